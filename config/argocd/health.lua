-- Argo CD health check for observability.xtrace.dev/XTrace.
-- Healthy: Ready=True for the current generation. Degraded: the operator could
-- not apply the spec (missing Secret, conflict, error). Progressing otherwise
-- (pods starting or rolling, status not caught up). Suspended: paused.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation or 0
if (obj.status.observedGeneration or 0) < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local ready, reconciled
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Reconciled" then reconciled = c end
end
if reconciled ~= nil and reconciled.status == "False" and reconciled.reason ~= "Paused" then
  return {status = "Degraded", message = (reconciled.reason or "") .. ": " .. (reconciled.message or "")}
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message or "Ready"}
end
if reconciled ~= nil and reconciled.reason == "Paused" then
  return {status = "Suspended", message = "spec.paused is true"}
end
if ready ~= nil then
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
end
return hs
