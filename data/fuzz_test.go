package data

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzStoreName stores arbitrary names and stock levels in the embedded
// database: each either round-trips exactly or fails with a classified
// error; nothing panics, and a failed write leaves no row.
func FuzzStoreName(f *testing.F) {
	for _, s := range []string{"widget", "", "x'); DROP TABLE products; --", "' OR '1'='1", strings.Repeat("é", 64), strings.Repeat("x", 65), "\x00nul", "\xff\xfe"} {
		f.Add(s, 1)
	}
	f.Add("negative", -1)
	db := openTest(f, Config{Path: filepath.Join(f.TempDir(), "fuzz.db")})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name string, stock int) {
		p := Product{Name: name, Stock: stock}
		err := db.WithContext(ctx).Create(&p).Error
		if err != nil {
			if !errors.Is(err, ErrViolation) && !errors.Is(err, ErrDuplicate) {
				t.Fatalf("Create(%q, %d): unclassified %v", name, stock, err)
			}
			var n int64
			if err := db.WithContext(ctx).Model(&Product{}).Where("name = ?", name).Count(&n).Error; err != nil || n > 1 {
				t.Fatalf("after a failed write: %d rows named %q, %v", n, name, err)
			}
			return
		}
		var back Product
		if err := db.WithContext(ctx).First(&back, p.ID).Error; err != nil || back != p {
			t.Fatalf("stored %+v, read %+v, %v", p, back, err)
		}
		if err := db.WithContext(ctx).Delete(&back).Error; err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzConfigValidate: any DSN is accepted or refused with a ConfigError,
// and the error never shows a password.
func FuzzConfigValidate(f *testing.F) {
	for _, s := range []string{"", "postgres://u:secret@127.0.0.1:5432/db", "postgresql://127.0.0.1/x?sslmode=disable", "mysql://u:secret@x/y", "postgres://u:secret@[::1", "%zz", "postgres://u:secret@127.0.0.1:notaport/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		cfg := Config{DSN: dsn, Replicas: []string{dsn}}
		err := cfg.Validate()
		if err == nil && dsn != "" {
			// Parsing for real (no connection is made yet).
			var sqlDB interface{ Close() error }
			sqlDB, _, err = openPostgres(cfg.withDefaults(), dsn, new(connSet))
			if err == nil {
				_ = sqlDB.Close()
			}
		}
		if err == nil {
			return
		}
		u, perr := url.Parse(dsn)
		if perr != nil || u.Opaque != "" {
			if !strings.Contains(err.Error(), "(DSN hidden)") {
				t.Fatalf("an unparsable DSN is shown: %v", err)
			}
			return
		}
		if pw, ok := u.User.Password(); ok && len(pw) > 3 && strings.Contains(err.Error(), pw) {
			t.Fatalf("password shown: %v", err)
		}
	})
}
