package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func (m migration) checksum() string {
	sum := sha256.Sum256([]byte(m.sql))
	return hex.EncodeToString(sum[:])
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1..n without gaps; %s is number %d", m.name, i+1)
		}
	}
	return out, nil
}

// Migrate applies pending migrations, each in its own transaction, under an
// advisory lock. It returns the names of the migrations it applied.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	migrations, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, classify(err)
	}
	defer conn.Release()
	unlock, err := lockSession(ctx, conn, lockMigrations)
	if err != nil {
		return nil, classify(err)
	}
	defer unlock()
	defer s.exclusiveSection(ctx, lockMigrations)()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS xtrace_schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL DEFAULT '',
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, classify(err)
	}
	applied := map[int]string{} // version -> checksum
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM xtrace_schema_migrations")
	if err != nil {
		return nil, classify(err)
	}
	var v int
	var sum string
	if _, err := pgx.ForEachRow(rows, []any{&v, &sum}, func() error { applied[v] = sum; return nil }); err != nil {
		return nil, classify(err)
	}
	var done []string
	for _, m := range migrations {
		if sum, ok := applied[m.version]; ok {
			// An applied migration must never change: the database would not match the code.
			if sum != m.checksum() {
				return nil, fmt.Errorf("migration %s was changed after it was applied to this database; add a new migration instead", m.name)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO xtrace_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.version, m.name, m.checksum())
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migration %s: %w", m.name, err)
		}
		done = append(done, m.name)
	}
	return done, nil
}
