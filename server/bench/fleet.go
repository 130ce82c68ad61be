package main

import (
	"fmt"
	"math"
	"strconv"
)

// fleet is the Nebula profile: 100 nodes × 8 GPUs × 4 metrics + 200 replicas × 3 metrics = 3,800 series.
type series struct {
	name   string
	labels map[string]string
}

func fleet() []series {
	var out []series
	for n := 0; n < 100; n++ {
		for g := 0; g < 8; g++ {
			for _, m := range []string{"gpu_utilization", "gpu_temperature", "gpu_memory_used_mb", "gpu_memory_total_mb"} {
				out = append(out, series{m, map[string]string{"node_id": fmt.Sprintf("node-%d", n), "gpu_index": strconv.Itoa(g)}})
			}
		}
	}
	for r := 0; r < 200; r++ {
		for _, m := range []string{"kv_cache_usage", "pending_requests", "prefix_cache_hit_rate"} {
			out = append(out, series{m, map[string]string{
				"model_uid": fmt.Sprintf("model-%d", r/4), "replica_id": strconv.Itoa(r % 4), "node_id": fmt.Sprintf("node-%d", r%100)}})
		}
	}
	return out
}

// valueModel makes the fleet's values look like a real fleet's, so that the
// storage's compression earns its figure honestly. Each series follows its
// metric's model, deterministically (seeded by the series):
//
//	gpu_utilization        bounded random walk in [0, 100], one decimal
//	gpu_temperature        integer °C drifting slowly (±1 every ~20 snapshots) in [35, 90]
//	gpu_memory_total_mb    constant (81920)
//	gpu_memory_used_mb     steps to a new multiple of 256 MB every ~60 snapshots
//	kv_cache_usage         bounded random walk in [0, 1], three decimals
//	pending_requests       small integer random walk in [0, 32]
//	prefix_cache_hit_rate  slow random walk in [0, 1], three decimals
//
// Values must be produced in snapshot order (all series of step 0, then of
// step 1, …); a new model starts the sequence again.
type valueModel struct {
	fleet []series
	state []float64
	rng   []uint64
}

const valueModelDoc = `values: gpu_utilization random walk [0,100] 1 decimal; gpu_temperature integer drift ±1/~20 steps; ` +
	`gpu_memory_total_mb constant; gpu_memory_used_mb steps of 256 MB every ~60 steps; kv_cache_usage walk [0,1] 3 decimals; ` +
	`pending_requests integer walk [0,32]; prefix_cache_hit_rate slow walk [0,1] 3 decimals`

func newValueModel(fl []series) *valueModel {
	m := &valueModel{fleet: fl, state: make([]float64, len(fl)), rng: make([]uint64, len(fl))}
	for i, s := range fl {
		m.rng[i] = uint64(i)*0x9E3779B97F4A7C15 + 1
		switch s.name {
		case "gpu_utilization":
			m.state[i] = float64(m.next(i) % 1000 / 10)
		case "gpu_temperature":
			m.state[i] = float64(45 + m.next(i)%30)
		case "gpu_memory_total_mb":
			m.state[i] = 81920
		case "gpu_memory_used_mb":
			m.state[i] = float64(256 * (m.next(i) % 320))
		case "kv_cache_usage", "prefix_cache_hit_rate":
			m.state[i] = float64(m.next(i)%1000) / 1000
		case "pending_requests":
			m.state[i] = float64(m.next(i) % 8)
		}
	}
	return m
}

// next is series i's xorshift random stream.
func (m *valueModel) next(i int) uint64 {
	x := m.rng[i]
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	m.rng[i] = x
	return x
}

// value advances series i by one snapshot and returns its value.
func (m *valueModel) value(i int) float64 {
	v := m.state[i]
	r := m.next(i)
	switch m.fleet[i].name {
	case "gpu_utilization":
		v = clamp(math.Round((v+float64(int(r%61)-30)/10)*10)/10, 0, 100)
	case "gpu_temperature":
		if r%20 == 0 {
			v = clamp(v+float64(int(r/20%3)-1), 35, 90)
		}
	case "gpu_memory_used_mb":
		if r%60 == 0 {
			v = float64(256 * (r / 60 % 320))
		}
	case "kv_cache_usage":
		v = clamp(math.Round((v+float64(int(r%41)-20)/1000)*1000)/1000, 0, 1)
	case "pending_requests":
		v = clamp(v+float64(int(r%3)-1), 0, 32)
	case "prefix_cache_hit_rate":
		if r%4 == 0 {
			v = clamp(math.Round((v+float64(int(r/4%11)-5)/1000)*1000)/1000, 0, 1)
		}
	}
	m.state[i] = v
	return v
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
