package store

import (
	"regexp"
	"strings"
	"testing"
)

// Every key function gives exactly the documented name.
func TestKeyNames(t *testing.T) {
	const wh, d = "6f1c2d1e-0b5a-4c55-9d0e-3f7f1f0c9a11", "0b1e6a43-2f55-4a07-8d52-1f8c5d0a3c27"
	for _, c := range []struct{ got, want string }{
		{LayoutKey(), "hermod:layout"},
		{WebhookKey(wh), "hermod:wh:" + wh},
		{WebhookListKey(), "hermod:whs"},
		{WebhookVersionKey(), "hermod:whver"},
		{KeyCheckKey(), "hermod:keycheck"},
		{EventKey("ev-1"), "hermod:e:ev-1"},
		{DeliveryWebhookKey(d), "hermod:dw:" + d},
		{AgentKey("eu-1"), "hermod:agent:eu-1"},
		{AgentSeenKey("eu-1"), "hermod:agentseen:eu-1"},
		{AgentListKey(), "hermod:agents"},
		{SessionKey("ab12"), "hermod:session:ab12"},
		{OpsWebhookKey(wh), "hermod:ops:wh:" + wh},
		{OpsAgentKey("eu-1"), "hermod:ops:agent:eu-1"},
		{OpsDeadKey(d, 2), "hermod:ops:dead:" + d + ":2"},
		{WebhookTag(wh), "{" + wh + "}"},
		{StatsKey(wh), "hermod:ws:{" + wh + "}"},
		{DeliveryIndexKey(wh), "hermod:wd:{" + wh + "}"},
		{StatusIndexKey(wh, "dead"), "hermod:wd:{" + wh + "}:dead"},
		{TrimmedKey(wh), "hermod:wt:{" + wh + "}"},
		{DeliveryKey(wh, d), "hermod:d:{" + wh + "}:" + d},
		{AttemptsKey(wh, d), "hermod:da:{" + wh + "}:" + d},
		{MinuteKey(wh, 28_333_333), "hermod:m:{" + wh + "}:28333333"},
		{ReplayKey(d), "hermod:rp:{replays}:" + d},
		{ReplayListKey(wh), "hermod:rpw:{replays}:" + wh},
		{ReplayRunningKey(wh), "hermod:rpr:{replays}:" + wh},
		{ReplaysActiveKey(), "hermod:rpa:{replays}"},
		{v1DeliveryKey(d), "hermod:d:" + d},
		{v1AttemptsKey(d), "hermod:da:" + d},
	} {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
}

// Layout 1 names map to their layout 2 names; layout 2 names are not
// taken for layout 1 ones (SCAN patterns match both).
func TestLayout1Targets(t *testing.T) {
	for _, c := range []struct {
		key    string
		target func(string) (string, bool)
		want   string
	}{
		{"hermod:ws:wh-1", v1StatsTarget, "hermod:ws:{wh-1}"},
		{"hermod:wd:wh-1", v1IndexTarget, "hermod:wd:{wh-1}"},
		{"hermod:wd:wh-1:pending", v1IndexTarget, "hermod:wd:{wh-1}:pending"},
		{"hermod:m:wh-1:28333333", v1MinuteTarget, "hermod:m:{wh-1}:28333333"},
		{"hermod:ws:{wh-1}", v1StatsTarget, ""},
		{"hermod:wd:{wh-1}:dead", v1IndexTarget, ""},
		{"hermod:m:{wh-1}:28333333", v1MinuteTarget, ""},
		{"hermod:m:wh-1:soon", v1MinuteTarget, ""},
		{"hermod:wd:wh-1:", v1IndexTarget, ""},
	} {
		got, ok := c.target(c.key)
		if c.want == "" {
			if ok {
				t.Errorf("%s taken for layout 1 (-> %s)", c.key, got)
			}
			continue
		}
		if !ok || got != c.want {
			t.Errorf("%s -> %q %v, want %q", c.key, got, ok, c.want)
		}
	}
	if d, ok := v1Rest(v1Delivery, "hermod:d:abc"); !ok || d != "abc" {
		t.Errorf("v1Rest: %q %v", d, ok)
	}
	if _, ok := v1Rest(v1Delivery, DeliveryKey("wh-1", "abc")); ok {
		t.Errorf("a layout 2 record taken for layout 1")
	}
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot is a key's Redis Cluster slot: the CRC16 of its hash tag (the
// part between the first "{" and the next "}", when not empty) or of the
// whole key, modulo 16384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func TestKeySlot(t *testing.T) {
	// The cluster specification's examples.
	if c := crc16("123456789"); c != 0x31C3 {
		t.Fatalf("crc16 %x", c)
	}
	if keySlot("{user1000}.following") != keySlot("{user1000}.followers") || keySlot("foo{}{bar}") != crc16("foo{}{bar}")%16384 ||
		keySlot("foo{{bar}}zap") != crc16("{bar")%16384 || keySlot("foo{bar}{zap}") != crc16("bar")%16384 {
		t.Fatalf("hash tag rules")
	}
}

// The keys of one script call hash to one slot, and the scripts touch no
// key they were not given.
func TestScriptKeysShareSlot(t *testing.T) {
	const wh = "6f1c2d1e-0b5a-4c55-9d0e-3f7f1f0c9a11"
	calls := map[string][]string{
		"merge":       mergeKeys(wh, "0b1e6a43-2f55-4a07-8d52-1f8c5d0a3c27", 28_333_333),
		"breaker":     {StatsKey(wh)},
		"dropTrimmed": {TrimmedKey(wh), DeliveryKey(wh, "a"), AttemptsKey(wh, "a"), DeliveryKey(wh, "b"), AttemptsKey(wh, "b")},
		"dropRecords": {StatsKey(wh), TrimmedKey(wh), StatusIndexKey(wh, "pending"), StatusIndexKey(wh, "success"),
			StatusIndexKey(wh, "failed"), StatusIndexKey(wh, "dead")},
	}
	for name, keys := range calls {
		for _, k := range keys {
			if !strings.Contains(k, WebhookTag(wh)) || keySlot(k) != keySlot(keys[0]) {
				t.Errorf("%s: %s is in slot %d, %s in %d", name, k, keySlot(k), keys[0], keySlot(keys[0]))
			}
		}
	}
	built := regexp.MustCompile(`hermod:|KEYS\[[^\]]*\]\s*\.\.|\.\.\s*KEYS\[`)
	for name, src := range map[string]string{"merge": mergeLua, "breaker": breakerLua, "dropTrimmed": dropTrimmedLua} {
		if m := built.FindString(src); m != "" {
			t.Errorf("%s script builds a key name (%q)", name, m)
		}
	}
}
