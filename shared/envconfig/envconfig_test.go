package envconfig_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/envconfig"
)

func reader(vars map[string]string) *envconfig.Reader {
	return envconfig.NewFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
}

func TestIntTable(t *testing.T) {
	const name = "HERMOD_TEST_INT"
	for _, c := range []struct {
		label   string
		set     bool
		value   string
		want    int
		errWord string // "" = no error
	}{
		{"unset gives default", false, "", 32, ""},
		{"empty gives default", true, "", 32, ""},
		{"blank gives default", true, "   ", 32, ""},
		{"in range", true, "64", 64, ""},
		{"surrounding spaces trimmed", true, " 7 ", 7, ""},
		{"lower bound", true, "1", 1, ""},
		{"upper bound", true, "1000", 1000, ""},
		{"below range", true, "0", 32, "out of range"},
		{"above range", true, "1001", 32, "out of range"},
		{"negative", true, "-5", 32, "out of range"},
		{"not a number", true, "many", 32, "not an integer"},
		{"float", true, "2.5", 32, "not an integer"},
		{"with unit", true, "10k", 32, "not an integer"},
		{"overflow", true, "99999999999999999999", 32, "not an integer"},
	} {
		t.Run(c.label, func(t *testing.T) {
			vars := map[string]string{}
			if c.set {
				vars[name] = c.value
			}
			r := reader(vars)
			if got := r.Int(name, 32, 1, 1000); got != c.want {
				t.Errorf("Int = %d, want %d", got, c.want)
			}
			err := r.Err()
			if c.errWord == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), c.errWord) {
				t.Errorf("error %v does not name %s and say %q", err, name, c.errWord)
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(c.value)) {
				t.Errorf("error %v does not quote the bad value %q", err, c.value)
			}
		})
	}
}

func TestDurationTable(t *testing.T) {
	const name = "HERMOD_TEST_TTL"
	for _, c := range []struct {
		label   string
		set     bool
		value   string
		want    time.Duration
		errWord string
	}{
		{"unset gives default", false, "", time.Minute, ""},
		{"seconds", true, "45s", 45 * time.Second, ""},
		{"compound", true, "1m30s", 90 * time.Second, ""},
		{"lower bound", true, "1s", time.Second, ""},
		{"upper bound", true, "1h", time.Hour, ""},
		{"below range", true, "500ms", time.Minute, "out of range"},
		{"above range", true, "2h", time.Minute, "out of range"},
		{"zero", true, "0s", time.Minute, "out of range"},
		{"negative", true, "-1m", time.Minute, "out of range"},
		{"bare number", true, "60", time.Minute, "not a duration"},
		{"days are not Go durations", true, "7d", time.Minute, "not a duration"},
		{"garbage", true, "soon", time.Minute, "not a duration"},
	} {
		t.Run(c.label, func(t *testing.T) {
			vars := map[string]string{}
			if c.set {
				vars[name] = c.value
			}
			r := reader(vars)
			if got := r.Duration(name, time.Minute, time.Second, time.Hour); got != c.want {
				t.Errorf("Duration = %s, want %s", got, c.want)
			}
			err := r.Err()
			if c.errWord == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), c.errWord) {
				t.Errorf("error %v does not name %s and say %q", err, name, c.errWord)
			}
		})
	}
}

// Every bad variable is named, each once, in one joined error.
func TestEveryProblemIsCollected(t *testing.T) {
	r := reader(map[string]string{"HERMOD_A": "x", "HERMOD_B": "0", "HERMOD_C": "forever", "HERMOD_OK": "3"})
	r.Int("HERMOD_A", 1, 1, 10)
	r.Int("HERMOD_B", 1, 1, 10)
	r.Duration("HERMOD_C", time.Second, time.Second, time.Hour)
	r.Required("HERMOD_D")
	r.Int("HERMOD_OK", 1, 1, 10)
	r.Check(false, "HERMOD_E", "must be %s", "valid")
	r.Check(true, "HERMOD_F", "never reported")
	err := r.Err()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, name := range []string{"HERMOD_A", "HERMOD_B", "HERMOD_C", "HERMOD_D", "HERMOD_E"} {
		if strings.Count(msg, name+":") != 1 {
			t.Errorf("%s named %d times in %q", name, strings.Count(msg, name+":"), msg)
		}
	}
	for _, name := range []string{"HERMOD_OK", "HERMOD_F"} {
		if strings.Contains(msg, name) {
			t.Errorf("%s reported: %q", name, msg)
		}
	}
	if !strings.Contains(msg, "HERMOD_E: must be valid") {
		t.Errorf("Check message: %q", msg)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 5 {
		t.Errorf("want 5 joined errors, got %v", err)
	}
	if reader(nil).Err() != nil {
		t.Errorf("a fresh reader has an error")
	}
}

func TestRequiredTable(t *testing.T) {
	for _, c := range []struct {
		label string
		vars  map[string]string
		want  string
		fails bool
	}{
		{"set", map[string]string{"HERMOD_NATS_URL": "nats://n:4222"}, "nats://n:4222", false},
		{"trimmed", map[string]string{"HERMOD_NATS_URL": "  nats://n:4222\n"}, "nats://n:4222", false},
		{"unset", map[string]string{}, "", true},
		{"empty", map[string]string{"HERMOD_NATS_URL": ""}, "", true},
		{"blank", map[string]string{"HERMOD_NATS_URL": " \t "}, "", true},
	} {
		t.Run(c.label, func(t *testing.T) {
			r := reader(c.vars)
			if got := r.Required("HERMOD_NATS_URL"); got != c.want {
				t.Errorf("Required = %q, want %q", got, c.want)
			}
			err := r.Err()
			if c.fails != (err != nil) {
				t.Fatalf("error %v, want fails=%v", err, c.fails)
			}
			if c.fails && (!strings.Contains(err.Error(), "HERMOD_NATS_URL") || !strings.Contains(err.Error(), "required")) {
				t.Errorf("error %q", err)
			}
		})
	}
}

func TestSecretMaskedInEffective(t *testing.T) {
	r := reader(map[string]string{"HERMOD_ADMIN_KEYS": "k1,k2", "HERMOD_LOG_LEVEL": "debug", "HERMOD_EMPTY_SECRET": "", "HERMOD_X_INT": "12"})
	if got := r.Secret("HERMOD_ADMIN_KEYS", ""); got != "k1,k2" {
		t.Errorf("Secret returns %q, want the real value", got)
	}
	if got := r.Secret("HERMOD_DEFAULTED_SECRET", "dflt"); got != "dflt" {
		t.Errorf("Secret default %q", got)
	}
	r.Secret("HERMOD_EMPTY_SECRET", "")
	r.String("HERMOD_LOG_LEVEL", "info")
	r.String("HERMOD_API_ADDR", ":8080")
	r.Int("HERMOD_X_INT", 1, 0, 100)
	eff := r.Effective()
	for name, want := range map[string]string{
		"HERMOD_ADMIN_KEYS":       "****",
		"HERMOD_DEFAULTED_SECRET": "****",
		"HERMOD_EMPTY_SECRET":     "", // unset stays visibly unset
		"HERMOD_LOG_LEVEL":        "debug",
		"HERMOD_API_ADDR":         ":8080",
		"HERMOD_X_INT":            "12",
	} {
		if got, ok := eff[name]; !ok || got != want {
			t.Errorf("Effective[%s] = %q (present %v), want %q", name, got, ok, want)
		}
	}
	for name, v := range eff {
		if strings.Contains(v, "k1") || strings.Contains(v, "dflt") {
			t.Errorf("Effective[%s] = %q leaks a secret", name, v)
		}
	}
	if got := strings.Join(r.Names(), ","); got != "HERMOD_ADMIN_KEYS,HERMOD_API_ADDR,HERMOD_DEFAULTED_SECRET,HERMOD_EMPTY_SECRET,HERMOD_LOG_LEVEL,HERMOD_X_INT" {
		t.Errorf("Names = %s", got)
	}
	// The encryption key read through EncryptionKey is masked too, valid or
	// not; a bad one is named.
	for key, valid := range map[string]bool{strings.Repeat("ab", 32): true, "not-hex": false, "abcd": false} {
		r := reader(map[string]string{"HERMOD_ENCRYPTION_KEY": key})
		box := envconfig.EncryptionKey(r, true)
		if got := r.Effective()["HERMOD_ENCRYPTION_KEY"]; got != "****" {
			t.Errorf("encryption key %q shown as %q", key, got)
		}
		if strings.Contains(errString(r.Err()), key) {
			t.Errorf("the error repeats the encryption key: %v", r.Err())
		}
		if valid != (box != nil) || valid != (r.Err() == nil) {
			t.Errorf("encryption key %q: box %v, error %v; want valid=%v", key, box != nil, r.Err(), valid)
		}
		if !valid && !strings.Contains(errString(r.Err()), "HERMOD_ENCRYPTION_KEY") {
			t.Errorf("error %v does not name HERMOD_ENCRYPTION_KEY", r.Err())
		}
	}
}

// A URL read with URL is printed with its password masked.
func TestURLMaskedInEffective(t *testing.T) {
	r := reader(map[string]string{"HERMOD_NATS_SYSTEM_URL": "nats://sys:s3cret@a:4222,nats://sys:s3cret@b:4222"})
	if got := r.URL("HERMOD_NATS_SYSTEM_URL", ""); got != "nats://sys:s3cret@a:4222,nats://sys:s3cret@b:4222" {
		t.Errorf("URL returns %q, want the real value", got)
	}
	r.URL("HERMOD_UNSET_URL", "")
	eff := r.Effective()
	if got := eff["HERMOD_NATS_SYSTEM_URL"]; got != "nats://sys:****@a:4222,nats://sys:****@b:4222" {
		t.Errorf("Effective = %q", got)
	}
	if got, ok := eff["HERMOD_UNSET_URL"]; !ok || got != "" {
		t.Errorf("unset URL shown as %q (present %v)", got, ok)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestMaskTable(t *testing.T) {
	if envconfig.Mask("") != "" || envconfig.Mask("x") != "****" || envconfig.Mask(strings.Repeat("s", 100)) != "****" {
		t.Errorf("Mask")
	}
}

func TestMaskURLTable(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"redis://:pw@redis:6379/0", "redis://:****@redis:6379/0"},
		{"redis://default:pw@redis:6379", "redis://default:****@redis:6379"},
		{"rediss://user:p%40ss@redis.internal:6380/1", "rediss://user:****@redis.internal:6380/1"},
		{"redis://:p@ss@redis:6379", "redis://:****@redis:6379"},
		{"nats://user:secret@nats-1:4222", "nats://user:****@nats-1:4222"},
		{"redis://redis:6379", "redis://redis:6379"},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"", ""},
		{"not a url", "not a url"},
		{"user:pw@host", "user:pw@host"}, // no scheme: left alone (not a URL Hermod reads)
		{"redis-sentinel://u:pw@s1:26379,s2:26379,s3:26379/0?master=m&sentinel_password=spw",
			"redis-sentinel://u:****@s1:26379,s2:26379,s3:26379/0?master=m&sentinel_password=****"},
		{"redis-sentinel://s1,s2/0?sentinel_username=a&sentinel_password=spw&master=m",
			"redis-sentinel://s1,s2/0?sentinel_username=a&sentinel_password=****&master=m"},
		{"redis-sentinel://:p,w@s1,s2?master=m", "redis-sentinel://:****@s1,s2?master=m"}, // a comma in the password
		{"rediss-cluster://default:pw@c1:6379,c2:6379,c3:6379", "rediss-cluster://default:****@c1:6379,c2:6379,c3:6379"},
		{"redis://:p/w@redis:6379/0", "redis://:****@redis:6379/0"},
	} {
		if got := envconfig.MaskURL(c.in); got != c.want {
			t.Errorf("MaskURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// NATS URLs may carry a token as the user part ("nats://TOKEN@host:4222");
// that token is a secret and must not be printed in the effective config.
func TestMaskURLTokenOnly(t *testing.T) {
	var leaked []string
	for _, in := range []string{"nats://s3cr3tT0ken@nats:4222", "tls://s3cr3tT0ken@nats-1:4222,nats://s3cr3tT0ken@nats-2:4222"} {
		if got := envconfig.MaskURL(in); strings.Contains(got, "s3cr3tT0ken") {
			leaked = append(leaked, in+" → "+got)
		}
	}
	// A cluster URL list with passwords: no password is printed.
	if got := envconfig.MaskURL("nats://u:pw1@nats-1:4222,nats://u:pw2@nats-2:4222"); strings.Contains(got, "pw1") || strings.Contains(got, "pw2") {
		t.Errorf("cluster URL list: %q", got)
	}
	r := reader(map[string]string{"HERMOD_NATS_URL": "nats://s3cr3tT0ken@nats:4222", "HERMOD_REDIS_URL": "redis://:pw@r:6379"})
	envconfig.ReadCommon(r, true)
	eff := r.Effective()
	if strings.Contains(eff["HERMOD_REDIS_URL"], "pw") {
		t.Errorf("redis password shown: %q", eff["HERMOD_REDIS_URL"])
	}
	if len(leaked) > 0 {
		t.Errorf("regression: MaskURL prints a credential given without a colon: %s (effective HERMOD_NATS_URL = %q)",
			strings.Join(leaked, "; "), eff["HERMOD_NATS_URL"])
	}
}

// HERMOD_REDIS_URL is checked when it is read: a bad one is named with what
// is wrong, a Sentinel or Cluster URL is printed with its passwords masked,
// and neither shows a password.
func TestRedisURLChecked(t *testing.T) {
	base := map[string]string{"HERMOD_NATS_URL": "nats://127.0.0.1:4222"}
	for _, c := range []struct{ url, want string }{
		{"redis-sentinel://:hunter2@s1,s2,s3/0", "master"},
		{"redis-cluster://:hunter2@c1,c2/3", "only database 0"},
		{"memcached://:hunter2@m1", "unknown scheme"},
	} {
		base["HERMOD_REDIS_URL"] = c.url
		r := reader(base)
		envconfig.ReadCommon(r, true)
		err := r.Err()
		if err == nil || !strings.Contains(err.Error(), "HERMOD_REDIS_URL: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want HERMOD_REDIS_URL named with %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", c.url, err)
		}
	}
	for _, u := range []string{"redis-sentinel://app:hunter2@s1:26379,s2:26379,s3:26379/0?master=m&sentinel_password=hunter3",
		"redis-cluster://:hunter2@c1:6379,c2:6379,c3:6379"} {
		base["HERMOD_REDIS_URL"] = u
		r := reader(base)
		envconfig.ReadCommon(r, true)
		if err := r.Err(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
		if eff := r.Effective()["HERMOD_REDIS_URL"]; strings.Contains(eff, "hunter") || !strings.Contains(eff, "****") {
			t.Errorf("printed as %q", eff)
		}
	}
}

func TestCommonValuesNamed(t *testing.T) {
	for _, c := range []struct {
		name, value string
	}{
		{"HERMOD_LOG_LEVEL", "verbose"},
		{"HERMOD_SHUTDOWN_TIMEOUT", "0s"},
		{"HERMOD_DEDUP_WINDOW", "10s"},
		{"HERMOD_RETENTION", "1s"},
		{"HERMOD_HISTORY_LIMIT", "0"},
		{"HERMOD_MAX_HOLD", "soon"},
		{"HERMOD_ACQUIRE_TTL", "2h"},
		{"HERMOD_STREAM_REPLICAS", "7"},
		{"HERMOD_OPS_EVENTS_COOLDOWN", "500ms"},
		{"HERMOD_OPS_EVENTS_COOLDOWN", "48h"},
		{"HERMOD_OPS_EVENTS_DEAD_LIMIT", "0"},
		{"HERMOD_OPS_EVENTS_DEAD_LIMIT", "many"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := reader(map[string]string{c.name: c.value, "HERMOD_NATS_URL": "nats://n", "HERMOD_REDIS_URL": "redis://r"})
			envconfig.ReadCommon(r, true)
			err := r.Err()
			if err == nil || !strings.HasPrefix(err.Error(), c.name+":") {
				t.Errorf("%s=%s: error %v", c.name, c.value, err)
			}
		})
	}
	r := reader(nil)
	c := envconfig.ReadCommon(r, false)
	if err := r.Err(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	want := envconfig.Common{LogLevel: "info", ShutdownTimeout: 30 * time.Second, DedupWindow: 30 * time.Minute,
		Retention: 72 * time.Hour, HistoryLimit: 10000, MaxHold: 7 * 24 * time.Hour, AcquireTTL: 60 * time.Second, StreamReplicas: 1,
		MaxEventBytes: 256 << 10, OpsCooldown: 5 * time.Minute, OpsDeadLimit: 10}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	// The separate binaries need both URLs set.
	r = reader(nil)
	envconfig.ReadCommon(r, true)
	for _, name := range []string{"HERMOD_NATS_URL", "HERMOD_REDIS_URL"} {
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), name+": is required") {
			t.Errorf("required %s: error %v", name, err)
		}
	}
}

func TestAllowCIDRsTable(t *testing.T) {
	for _, c := range []struct {
		label string
		vars  map[string]string
		want  string
		fails bool
	}{
		{"unset gives the default", nil, "none", false},
		{"one range", map[string]string{"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}, "127.0.0.0/8", false},
		{"address without prefix", map[string]string{"HERMOD_DELIVERY_ALLOW_CIDRS": "10.0.0.1"}, "10.0.0.1", true},
	} {
		t.Run(c.label, func(t *testing.T) {
			r := reader(c.vars)
			got, err := envconfig.AllowCIDRs(r, "none")
			if got != c.want || (err != nil) != c.fails || (r.Err() != nil) != c.fails {
				t.Fatalf("AllowCIDRs = %q, %v (reader: %v); want %q, fails=%v", got, err, r.Err(), c.want, c.fails)
			}
			if c.fails && !strings.Contains(r.Err().Error(), "HERMOD_DELIVERY_ALLOW_CIDRS") {
				t.Errorf("error %v does not name HERMOD_DELIVERY_ALLOW_CIDRS", r.Err())
			}
		})
	}
}

// Variables a program does not read are listed, once each, sorted; only
// the HERMOD_ prefix counts, and a variable read with its default is known.
func TestUnknown(t *testing.T) {
	r := reader(map[string]string{"HERMOD_NATS_URL": "nats://x"})
	r.String("HERMOD_NATS_URL", "")
	r.Int("HERMOD_HISTORY_LIMIT", 10, 0, 100)
	environ := []string{"PATH=/bin", "HERMOD_NATS_URL=nats://x", "HERMOD_HISTROY_LIMIT=5", "HERMOD_HISTORY_LIMIT=",
		"HERMOD_DELIVERY_CONCURRENCY=8", "HERMODCTL_SERVER=http://x", "HERMOD_HISTROY_LIMIT=6", "NOT_HERMOD_X=1"}
	if got, want := r.Unknown(environ), []string{"HERMOD_DELIVERY_CONCURRENCY", "HERMOD_HISTROY_LIMIT"}; !slices.Equal(got, want) {
		t.Errorf("Unknown = %v, want %v", got, want)
	}
	if got := r.Unknown([]string{"HERMOD_NATS_URL=a"}); len(got) != 0 {
		t.Errorf("Unknown of read variables = %v", got)
	}
}
