package store

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// queryBuffered runs a query and reads its whole result before returning, so
// that a server dying mid-result fails the call itself, where the read can
// still be retried elsewhere, rather than the caller's iteration. The
// connection stays acquired (its type map decodes the rows) until the rows
// are closed. Replica reads use it; their results are bounded by the query
// limits (series, points per series, page sizes).
func queryBuffered(ctx context.Context, pool *pgxpool.Pool, sql string, args []any) (pgx.Rows, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		conn.Release()
		return nil, err
	}
	b := &bufferedRows{conn: conn, fields: slices.Clone(rows.FieldDescriptions())}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([][]byte, len(raw))
		for i, v := range raw {
			row[i] = bytes.Clone(v) // nil (NULL) stays nil
		}
		b.rows = append(b.rows, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		conn.Release()
		return nil, err
	}
	b.tag = rows.CommandTag()
	return b, nil
}

// bufferedRows is a read result held in memory (pgx.Rows).
type bufferedRows struct {
	conn   *pgxpool.Conn
	fields []pgconn.FieldDescription
	rows   [][][]byte
	tag    pgconn.CommandTag
	next   int // index of the row Next makes current
	err    error
	closed bool
}

func (b *bufferedRows) Close() {
	if !b.closed {
		b.closed = true
		b.conn.Release()
	}
}

func (b *bufferedRows) Err() error                                   { return b.err }
func (b *bufferedRows) CommandTag() pgconn.CommandTag                { return b.tag }
func (b *bufferedRows) FieldDescriptions() []pgconn.FieldDescription { return b.fields }
func (b *bufferedRows) Conn() *pgx.Conn                              { return b.conn.Conn() }
func (b *bufferedRows) TypeMap() *pgtype.Map                         { return b.conn.Conn().TypeMap() }

func (b *bufferedRows) Next() bool {
	if b.closed {
		return false
	}
	if b.next == len(b.rows) {
		b.Close()
		return false
	}
	b.next++
	return true
}

func (b *bufferedRows) current() [][]byte {
	if b.next == 0 || b.closed {
		return nil
	}
	return b.rows[b.next-1]
}

func (b *bufferedRows) RawValues() [][]byte { return b.current() }

func (b *bufferedRows) Scan(dest ...any) error {
	row := b.current()
	if row == nil {
		return errors.New("scan without a current row")
	}
	var err error
	if rs, ok := singleRowScanner(dest); ok {
		err = rs.ScanRow(b)
	} else {
		err = pgx.ScanRow(b.TypeMap(), b.fields, row, dest...)
	}
	if err != nil {
		b.err = err
		b.Close()
	}
	return err
}

func singleRowScanner(dest []any) (pgx.RowScanner, bool) {
	if len(dest) != 1 {
		return nil, false
	}
	rs, ok := dest[0].(pgx.RowScanner)
	return rs, ok
}

func (b *bufferedRows) Values() ([]any, error) {
	row := b.current()
	if row == nil {
		return nil, errors.New("values without a current row")
	}
	m := b.TypeMap()
	values := make([]any, len(b.fields))
	for i, fd := range b.fields {
		buf := row[i]
		switch dt, ok := m.TypeForOID(fd.DataTypeOID); {
		case buf == nil:
		case ok:
			v, err := dt.Codec.DecodeValue(m, fd.DataTypeOID, fd.Format, buf)
			if err != nil {
				return nil, err
			}
			values[i] = v
		case fd.Format == pgx.TextFormatCode:
			values[i] = string(buf)
		default:
			values[i] = bytes.Clone(buf)
		}
	}
	return values, nil
}

// bufferedRow is QueryRow's answer over Query (pgx.Row).
type bufferedRow struct {
	rows pgx.Rows
	err  error
}

func (r bufferedRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
