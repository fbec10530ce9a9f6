package sink

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/snowflakedb/gosnowflake/v2"
)

// SnowflakeConfig says where and as whom the sink writes to Snowflake. Exactly one of
// Password and PrivateKeyPEM authenticates; the key pair is what production should use.
type SnowflakeConfig struct {
	// Account is the account identifier ("myorg-myaccount", or the legacy locator
	// "xy12345.eu-central-1"). Required.
	Account string
	// User is the login name. Required.
	User string
	// Role is the role to use; empty means the user's default role.
	Role string
	// Warehouse runs the sink's statements; empty means the user's default warehouse
	// (CheckSnowflake fails when there is none).
	Warehouse string
	// Database and Schema hold the sink's tables. Both required.
	Database, Schema string
	// Password authenticates with user and password.
	Password string
	// PrivateKeyPEM authenticates with a key pair (JWT): an RSA key as PKCS#8 PEM
	// ("PRIVATE KEY"), PKCS#8 encrypted with PBES2 ("ENCRYPTED PRIVATE KEY", as
	// `openssl pkcs8 -topk8` writes it; see ParseSnowflakeKey) or PKCS#1 ("RSA PRIVATE KEY").
	PrivateKeyPEM []byte
	// PrivateKeyPassphrase decrypts an encrypted PrivateKeyPEM. Read it from the
	// environment or a secret store, never from a file next to the key.
	PrivateKeyPassphrase string
	// Host, Port and Protocol override the endpoint derived from Account, for a local
	// server such as fakesnow ("127.0.0.1", 8080, "http"). Empty: the account's
	// https://<account>.snowflakecomputing.com:443.
	Host     string
	Port     int
	Protocol string
	// MaxRetryCount bounds gosnowflake's retries of one HTTP request (0: its default,
	// 7). Tests against fakesnow set 1: it answers some errors with HTTP 500, which
	// gosnowflake otherwise retries for about 16 s.
	MaxRetryCount int
}

// Validate checks the config once, naming the first bad field.
func (c SnowflakeConfig) Validate() error {
	switch {
	case strings.TrimSpace(c.Account) == "":
		return errors.New("snowflake.account: required")
	case strings.TrimSpace(c.User) == "":
		return errors.New("snowflake.user: required")
	case strings.TrimSpace(c.Database) == "":
		return errors.New("snowflake.database: required")
	case strings.TrimSpace(c.Schema) == "":
		return errors.New("snowflake.schema: required")
	case c.Password == "" && len(c.PrivateKeyPEM) == 0:
		return errors.New("snowflake.password: set a password or a private key")
	case c.Password != "" && len(c.PrivateKeyPEM) > 0:
		return errors.New("snowflake.password: set a password or a private key, not both")
	case c.PrivateKeyPassphrase != "" && len(c.PrivateKeyPEM) == 0:
		return errors.New("snowflake.private_key_passphrase: set, but there is no private key")
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("snowflake.port: must be in 0..65535 (got %d)", c.Port)
	case c.Protocol != "" && c.Protocol != "http" && c.Protocol != "https":
		return fmt.Errorf("snowflake.protocol: must be http or https (got %q)", c.Protocol)
	case strings.Contains(c.Host, "://"):
		return fmt.Errorf("snowflake.host: a host name, without a scheme (got %q)", c.Host)
	case c.MaxRetryCount < 0:
		return fmt.Errorf("snowflake.max_retry_count: must be >= 0 (got %d)", c.MaxRetryCount)
	}
	if len(c.PrivateKeyPEM) > 0 {
		if _, err := ParseSnowflakeKey(c.PrivateKeyPEM, c.PrivateKeyPassphrase); err != nil {
			return fmt.Errorf("snowflake.private_key: %w", err)
		}
	}
	return nil
}

// driverConfig is the gosnowflake Config of c (which must be valid).
func (c SnowflakeConfig) driverConfig() (*gosnowflake.Config, error) {
	cfg := &gosnowflake.Config{
		Account:       c.Account,
		User:          c.User,
		Role:          c.Role,
		Warehouse:     c.Warehouse,
		Database:      c.Database,
		Schema:        c.Schema,
		Host:          c.Host,
		Port:          c.Port,
		Protocol:      c.Protocol,
		MaxRetryCount: c.MaxRetryCount,
		Application:   "sluice",
	}
	if len(c.PrivateKeyPEM) > 0 {
		key, err := ParseSnowflakeKey(c.PrivateKeyPEM, c.PrivateKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("snowflake.private_key: %w", err)
		}
		cfg.Authenticator = gosnowflake.AuthTypeJwt
		cfg.PrivateKey = key
	} else {
		cfg.Authenticator = gosnowflake.AuthTypeSnowflake
		cfg.Password = c.Password
	}
	return cfg, nil
}

// openSnowflakeDB validates cfg, opens a pool and logs in once.
func openSnowflakeDB(ctx context.Context, cfg SnowflakeConfig) (*sql.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dc, err := cfg.driverConfig()
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(gosnowflake.NewConnector(gosnowflake.SnowflakeDriver{}, *dc))
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sink: connect to snowflake account %s as %s: %w", cfg.Account, cfg.User, errors.Join(err, db.Close()))
	}
	return db, nil
}

// OpenSnowflake connects to Snowflake as cfg says and wraps the pool in a Warehouse with
// the Snowflake dialect. It logs in once to fail fast on a bad account or credentials.
// Call Migrate before use.
func OpenSnowflake(ctx context.Context, cfg SnowflakeConfig, opts ...Option) (*SQLWarehouse, error) {
	db, err := openSnowflakeDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewSQL(db, Snowflake{}, opts...), nil
}

// CheckSnowflake connects as cfg says and checks that the sink can work there, for
// `sluice sink --check`: it logs in, reads the session's user, role, warehouse, database
// and schema, creates, writes, merges into and drops a probe table in the schema (CREATE
// TABLE, INSERT, UPDATE, DELETE), and runs no-op statements (WHERE 1 = 0) against every
// sink table already there with the privileges the sink needs on it. It changes nothing
// but the short-lived probe table. verdict has one line per check, "ok: ...", "FAIL: ..."
// or "note: ..."; err is non-nil, naming the failures, when any check failed.
func CheckSnowflake(ctx context.Context, cfg SnowflakeConfig) (verdict string, err error) {
	var lines, fails []string
	ok := func(format string, args ...any) { lines = append(lines, "ok: "+fmt.Sprintf(format, args...)) }
	note := func(format string, args ...any) { lines = append(lines, "note: "+fmt.Sprintf(format, args...)) }
	fail := func(what string, err error) {
		lines = append(lines, fmt.Sprintf("FAIL: %s: %v", what, err))
		fails = append(fails, what)
	}
	done := func() (string, error) {
		v := strings.Join(lines, "\n")
		if len(fails) > 0 {
			return v, fmt.Errorf("sink: snowflake check failed: %s", strings.Join(fails, "; "))
		}
		return v, nil
	}

	db, err := openSnowflakeDB(ctx, cfg)
	if err != nil {
		fail("connect", err)
		return done()
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	ok("logged in to account %s as %s", cfg.Account, cfg.User)

	// Session context, one function at a time: a missing one (fakesnow has no
	// CURRENT_WAREHOUSE) is unknown, not a failure; a NULL one is.
	sessionValue := func(fn string) (string, bool) {
		var v sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT "+fn+"()").Scan(&v); err != nil {
			return "unknown", true
		}
		return v.String, v.Valid
	}
	var parts []string
	for _, c := range []struct{ fn, field, want string }{
		{"CURRENT_USER", "user", ""},
		{"CURRENT_ROLE", "role", cfg.Role},
		{"CURRENT_WAREHOUSE", "warehouse", cfg.Warehouse},
		{"CURRENT_DATABASE", "database", cfg.Database},
		{"CURRENT_SCHEMA", "schema", cfg.Schema},
	} {
		v, set := sessionValue(c.fn)
		switch {
		case !set && c.field == "warehouse":
			fail("warehouse", errors.New("the session has none: set snowflake.warehouse or give the user a default warehouse"))
		case !set && c.field != "role":
			fail(c.field, fmt.Errorf("%s() is NULL: %q does not exist or the role cannot use it", c.fn, c.want))
		}
		parts = append(parts, c.field+" "+v)
	}
	note("session: %s", strings.Join(parts, ", "))
	if len(fails) > 0 {
		return done()
	}

	d := Snowflake{}
	probe := "SLUICE_CHECK_" + rand.Text() // [A-Z2-7]{26}: unique, so that checks may run at once
	probeCols := []Column{{Name: "ID", Type: ColumnType{Kind: KindLong}}, {Name: "V", Type: ColumnType{Kind: KindString}}}
	steps := []struct{ what, stmt string }{
		{"CREATE TABLE", d.CreateTable(probe, probeCols, []string{"ID"})},
		{"INSERT", d.InsertValues(probe, probeCols, 1)},
		{"MERGE (INSERT and UPDATE)", d.InsertSelect(probe, probeCols, []string{"ID"},
			"SELECT CAST(1 AS "+d.TypeName(probeCols[0].Type)+") AS \"ID\", 'merged' AS \"V\"", ConflictReplace)},
		{"DELETE", "DELETE FROM " + d.Quote(probe)},
	}
	var stepsOK []string
	for i, st := range steps {
		var args []any
		if i == 1 {
			args = []any{int64(1), "inserted"}
		}
		if _, err := db.ExecContext(ctx, st.stmt, args...); err != nil {
			fail(st.what+" in the schema", err)
			break
		}
		stepsOK = append(stepsOK, st.what)
	}
	if len(stepsOK) > 0 {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+d.Quote(probe)); err != nil {
			fail("DROP TABLE "+probe+" (drop it by hand)", err)
		} else {
			stepsOK = append(stepsOK, "DROP TABLE")
		}
		ok("%s in %s.%s (probe table %s)", strings.Join(stepsOK, ", "), cfg.Database, cfg.Schema, probe)
	}
	checkSinkTables(ctx, db, d, ok, note, fail)
	return done()
}

// checkSinkTables runs no-op statements against the sink tables that exist, with the
// privileges the sink needs on each.
func checkSinkTables(ctx context.Context, db *sql.DB, d Snowflake, ok, note func(string, ...any), fail func(string, error)) {
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables "+
		"WHERE table_schema = CURRENT_SCHEMA() ORDER BY table_name")
	if err != nil {
		fail("list tables", err)
		return
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			fail("list tables", err)
			return
		}
		tables = append(tables, name)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		fail("list tables", err)
		return
	}
	has := make(map[string]bool, len(tables))
	for _, name := range tables {
		has[name] = true
	}
	if !has[OffsetsTable] {
		note("%s is not there yet: the sink creates its tables (Migrate) on its first start", OffsetsTable)
	}
	never := " WHERE 1 = 0"
	for _, name := range tables {
		q := d.Quote(name)
		var checks []struct{ what, stmt string }
		add := func(what, stmt string) { checks = append(checks, struct{ what, stmt string }{what, stmt}) }
		switch {
		case name == OffsetsTable:
			add("SELECT, INSERT", "INSERT INTO "+q+" SELECT * FROM "+q+never)
			add("UPDATE", "UPDATE "+q+" SET "+d.Quote("OWNER_EPOCH")+" = "+d.Quote("OWNER_EPOCH")+never)
		case name == MigrationsTable:
			add("SELECT, INSERT", "INSERT INTO "+q+" SELECT * FROM "+q+never)
		case name == AggregatesTable:
			add("SELECT, INSERT", "INSERT INTO "+q+" SELECT * FROM "+q+never)
			add("UPDATE", "UPDATE "+q+" SET "+d.Quote("EMITTED_AT")+" = "+d.Quote("EMITTED_AT")+never)
		case strings.HasPrefix(name, StagePrefix):
			add("SELECT, INSERT", "INSERT INTO "+q+" SELECT * FROM "+q+never)
			add("DELETE", "DELETE FROM "+q+never)
		case has[StagePrefix+name]:
			add("SELECT, INSERT", "INSERT INTO "+q+" SELECT * FROM "+q+never)
		default:
			continue
		}
		var privs []string
		for _, c := range checks {
			if _, err := db.ExecContext(ctx, c.stmt); err != nil {
				fail(c.what+" on "+name, err)
				continue
			}
			privs = append(privs, c.what)
		}
		if len(privs) > 0 {
			ok("%s on %s", strings.Join(privs, ", "), name)
		}
	}
}
