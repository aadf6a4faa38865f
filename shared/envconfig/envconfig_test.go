package envconfig

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) *Reader {
	return NewFrom(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func TestReaderNamesEveryBadVariable(t *testing.T) {
	r := env(map[string]string{"HERMOD_X_INT": "12", "HERMOD_BAD_INT": "ten", "HERMOD_BIG": "99",
		"HERMOD_DUR": "5m", "HERMOD_BAD_DUR": "soon", "HERMOD_KEY": "s3cret"})
	if r.Int("HERMOD_X_INT", 1, 0, 100) != 12 || r.Int("HERMOD_UNSET", 7, 0, 100) != 7 {
		t.Errorf("Int")
	}
	r.Int("HERMOD_BAD_INT", 1, 0, 100)
	r.Int("HERMOD_BIG", 1, 0, 10)
	if r.Duration("HERMOD_DUR", time.Second, time.Second, time.Hour) != 5*time.Minute {
		t.Errorf("Duration")
	}
	r.Duration("HERMOD_BAD_DUR", time.Second, time.Second, time.Hour)
	r.Required("HERMOD_MISSING")
	r.Secret("HERMOD_KEY", "")
	err := r.Err()
	for _, name := range []string{"HERMOD_BAD_INT", "HERMOD_BIG", "HERMOD_BAD_DUR", "HERMOD_MISSING"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
	if eff := r.Effective(); eff["HERMOD_KEY"] != "****" || eff["HERMOD_X_INT"] != "12" {
		t.Errorf("effective %v", eff)
	}
}

func TestCommonAndMasking(t *testing.T) {
	r := env(map[string]string{"HERMOD_NATS_URL": "nats://n:4222", "HERMOD_REDIS_URL": "redis://:pw@r:6379/0",
		"HERMOD_ENCRYPTION_KEY": strings.Repeat("ab", 32), "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"})
	c := ReadCommon(r, true)
	box := EncryptionKey(r, true)
	allow, _ := AllowCIDRs(r, "")
	if err := r.Err(); err != nil || box == nil || allow != "127.0.0.0/8" || c.Retention != 72*time.Hour || c.StreamReplicas != 1 {
		t.Fatalf("%v %+v", err, c)
	}
	eff := r.Effective()
	if eff["HERMOD_REDIS_URL"] != "redis://:****@r:6379/0" || eff["HERMOD_ENCRYPTION_KEY"] != "****" {
		t.Errorf("not masked: %v", eff)
	}
	bad := env(map[string]string{"HERMOD_ENCRYPTION_KEY": "short", "HERMOD_LOG_LEVEL": "loud", "HERMOD_DELIVERY_ALLOW_CIDRS": "10.0.0.1"})
	ReadCommon(bad, true)
	EncryptionKey(bad, true)
	_, _ = AllowCIDRs(bad, "")
	for _, name := range []string{"HERMOD_NATS_URL", "HERMOD_REDIS_URL", "HERMOD_ENCRYPTION_KEY", "HERMOD_LOG_LEVEL", "HERMOD_DELIVERY_ALLOW_CIDRS"} {
		if !strings.Contains(bad.Err().Error(), name) {
			t.Errorf("missing %s in %v", name, bad.Err())
		}
	}
	if MaskURL("redis://host:6379") != "redis://host:6379" || MaskURL("nats://u:p@h") != "nats://u:****@h" {
		t.Errorf("MaskURL")
	}
}
