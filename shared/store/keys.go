package store

import (
	"strconv"
	"strings"

	"github.com/hermodhq/hermod/shared/streams"
)

// Every Redis key Hermod uses is built by a function of this file; no other
// file (nor any Lua script) puts a key name together. docs/architecture.md,
// section "Redis layout", lists them with their types and lifetimes.
//
// Keys that a Lua script touches carry the webhook's hash tag, {<webhook id>}:
// Redis Cluster hashes only the part between the braces, so one script call's
// keys (a delivery's record and attempts, and its webhook's statistics,
// indexes and minute buckets) always live in one slot. Keys no script touches
// keep their first names and have no tag.

// LayoutVersion is the key layout this build reads and writes; LayoutKey
// records it in Redis once Migrate brought older data to it.
//
//   - 1: the first layout, without hash tags (no LayoutKey).
//   - 2: per-webhook keys tagged {<webhook id>}; delivery records and
//     attempts under their webhook's tag; DeliveryWebhookKey and TrimmedKey.
const LayoutVersion = 2

const prefix = "hermod:"

// LayoutKey holds the layout version of the data (a decimal string).
func LayoutKey() string { return prefix + "layout" }

// WebhookKey holds one webhook (JSON, secrets sealed).
func WebhookKey(webhookID string) string { return prefix + "wh:" + webhookID }

// WebhookListKey is the zset of webhook ids scored by creation time (µs).
func WebhookListKey() string { return prefix + "whs" }

// WebhookVersionKey is the webhook change counter the indexes poll.
func WebhookVersionKey() string { return prefix + "whver" }

// KeyCheckKey holds a sealed marker that the encryption key must open.
func KeyCheckKey() string { return prefix + "keycheck" }

// EventKey holds an event's envelope, stored once for all its deliveries
// (of any webhook, so it has no webhook tag).
func EventKey(eventID string) string { return prefix + "e:" + eventID }

// DeliveryWebhookKey names the webhook a delivery belongs to (a string):
// an API request names a delivery by its id alone, and its record lives
// under its webhook's tag.
func DeliveryWebhookKey(deliveryID string) string { return prefix + "dw:" + deliveryID }

// AgentKey holds an agent's grant (JSON, the token as a SHA-256 hash).
func AgentKey(agentID string) string { return prefix + "agent:" + agentID }

// AgentSeenKey holds an agent's heartbeat fields, apart from its grant.
func AgentSeenKey(agentID string) string { return prefix + "agentseen:" + agentID }

// AgentListKey is the zset of agent ids scored by creation time (µs).
func AgentListKey() string { return prefix + "agents" }

// SessionKey holds a web page session under the hex SHA-256 of its cookie
// value (never the value itself).
func SessionKey(tokenHash string) string { return prefix + "session:" + tokenHash }

// OpsWebhookKey holds what operational events last told about a webhook
// (JSON, opsevents.WebhookState): its announced status, when it was last
// announced degraded, and its delivery.dead budget.
func OpsWebhookKey(webhookID string) string { return prefix + "ops:wh:" + webhookID }

// OpsAgentKey holds what operational events last told about an agent
// (JSON, opsevents.AgentState).
func OpsAgentKey(agentID string) string { return prefix + "ops:agent:" + agentID }

// OpsDeadKey marks that the death of a delivery (in one epoch) was counted
// by the operational events (a string, set once): a batch recorded again
// never counts it twice.
func OpsDeadKey(deliveryID string, epoch int) string {
	return prefix + "ops:dead:" + deliveryID + ":" + strconv.Itoa(epoch)
}

// WebhookTag is the hash tag shared by every key a script touches for one
// webhook's deliveries (the key functions below spell it inline, so each
// key is built with one allocation).
func WebhookTag(webhookID string) string { return "{" + webhookID + "}" }

// StatsKey holds a webhook's lasting counters and breaker state (hash).
func StatsKey(webhookID string) string { return prefix + "ws:{" + webhookID + "}" }

// DeliveryIndexKey is the zset of a webhook's delivery ids by creation time (ms).
func DeliveryIndexKey(webhookID string) string { return prefix + "wd:{" + webhookID + "}" }

// StatusIndexKey is DeliveryIndexKey restricted to one status.
func StatusIndexKey(webhookID string, status streams.Status) string {
	return prefix + "wd:{" + webhookID + "}:" + string(status)
}

// TrimmedKey is the zset of a webhook's delivery ids that the history limit
// pushed out of its indexes and whose records are yet to be deleted.
func TrimmedKey(webhookID string) string { return prefix + "wt:{" + webhookID + "}" }

// DeliveryKey holds a delivery record (hash).
func DeliveryKey(webhookID, deliveryID string) string {
	return prefix + "d:{" + webhookID + "}:" + deliveryID
}

// AttemptsKey holds a delivery's attempt history (hash, field epoch.attempt).
func AttemptsKey(webhookID, deliveryID string) string {
	return prefix + "da:{" + webhookID + "}:" + deliveryID
}

// MinuteKey holds a webhook's counters of one minute (unix ms / 60000).
func MinuteKey(webhookID string, minute int64) string {
	return prefix + "m:{" + webhookID + "}:" + strconv.FormatInt(minute, 10)
}

// Layout 1, read only by Migrate. Its per-webhook and per-delivery keys had
// no tag: "hermod:d:<delivery>", "hermod:da:<delivery>", "hermod:ws:<webhook>",
// "hermod:wd:<webhook>" (":<status>"), "hermod:m:<webhook>:<minute>".
const (
	v1Delivery = prefix + "d:"
	v1Attempts = prefix + "da:"
	v1Stats    = prefix + "ws:"
	v1Index    = prefix + "wd:"
	v1Minute   = prefix + "m:"
)

// v1Pattern is the SCAN pattern of a layout 1 kind; it matches the layout 2
// keys of the same kind too, which v1Rest tells apart.
func v1Pattern(kind string) string { return kind + "*" }

// v1Rest returns what follows a layout 1 key's kind prefix; ok is false for
// a key of layout 2 (its rest starts with a tag).
func v1Rest(kind, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, kind)
	if !ok || rest == "" || rest[0] == '{' {
		return "", false
	}
	return rest, true
}

// v1DeliveryKey and v1AttemptsKey name a delivery's layout 1 keys.
func v1DeliveryKey(deliveryID string) string { return v1Delivery + deliveryID }
func v1AttemptsKey(deliveryID string) string { return v1Attempts + deliveryID }

// v1IndexTarget maps a layout 1 delivery index key to its layout 2 name.
func v1IndexTarget(key string) (string, bool) {
	rest, ok := v1Rest(v1Index, key)
	if !ok {
		return "", false
	}
	if wh, status, has := strings.Cut(rest, ":"); has {
		return StatusIndexKey(wh, streams.Status(status)), wh != "" && status != ""
	}
	return DeliveryIndexKey(rest), true
}

// v1StatsTarget maps a layout 1 statistics key to its layout 2 name.
func v1StatsTarget(key string) (string, bool) {
	rest, ok := v1Rest(v1Stats, key)
	if !ok {
		return "", false
	}
	return StatsKey(rest), true
}

// v1MinuteTarget maps a layout 1 minute key to its layout 2 name.
func v1MinuteTarget(key string) (string, bool) {
	rest, ok := v1Rest(v1Minute, key)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return "", false
	}
	m, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return "", false
	}
	return MinuteKey(rest[:i], m), true
}

// Replay keys: a bulk replay of a webhook's deliveries (replays.go). The
// transition scripts touch a replay's record with its webhook's running
// pointer and the set of running replays, and a replay is named by its id
// alone, so every replay key carries one fixed tag, {replays}: they share a
// slot (a few small keys per replay, kept for the retention).

// ReplayTag is the hash tag of every replay key.
const ReplayTag = "{replays}"

// ReplayKey holds a replay (hash: its request, state, counts, position and lease).
func ReplayKey(replayID string) string { return prefix + "rp:" + ReplayTag + ":" + replayID }

// ReplayListKey is the zset of a webhook's replay ids by creation time (ms).
func ReplayListKey(webhookID string) string { return prefix + "rpw:" + ReplayTag + ":" + webhookID }

// ReplayRunningKey holds the id of a webhook's running replay (a string; at
// most one runs per webhook).
func ReplayRunningKey(webhookID string) string { return prefix + "rpr:" + ReplayTag + ":" + webhookID }

// ReplaysActiveKey is the zset of running replay ids by creation time (ms):
// what every API process looks through for a replay without a live lease.
func ReplaysActiveKey() string { return prefix + "rpa:" + ReplayTag }
