package streams

// Core NATS subjects of Hermod's control traffic, and the NATS system and
// JetStream API subjects Hermod uses. With the stream, consumer and subject
// names in streams.go, these are every NATS name Hermod uses.

// Webhook indexes announce themselves on IndexAliveSubject (every second,
// and when asked on IndexProbeSubject), so the API knows how many must
// confirm a change notice.
const (
	IndexAliveSubject = "hermod.changes.alive"
	IndexProbeSubject = "hermod.changes.probe"
)

// AgentKickPrefix + <agent id>: hermod-api asks here that an agent's NATS
// connections be closed (after a grant change or a revocation); whoever
// holds a system-account connection answers.
const AgentKickPrefix = "hermod.agentkick."

// AgentKickSubject is where the kick of agent id is asked.
func AgentKickSubject(id string) string { return AgentKickPrefix + id }

// Every subject under Hermod's root.
const AllSubjects = "hermod.>"

// NATS system subjects.
const (
	SysAuthCallout = "$SYS.REQ.USER.AUTH"         // nats-server's authorization requests to the auth callout
	SysConnzPing   = "$SYS.REQ.SERVER.PING.CONNZ" // every server of the cluster lists its connections
	SysUserInfo    = "$SYS.REQ.USER.INFO"         // the asking connection's user and account
)

// SysKickSubject is where server serverID is asked to close one connection.
func SysKickSubject(serverID string) string { return "$SYS.REQ.SERVER." + serverID + ".KICK" }

// AgentConsumerAPISubjects are the JetStream API subjects an agent publishes
// on to pull from and ack the label-set consumer named consumer: the next
// message, the consumer's info, and acks in both the v1 and the v2 format
// ($JS.ACK.<domain>.<account hash>.<stream>.<consumer>...).
func AgentConsumerAPISubjects(consumer string) []string {
	return []string{
		"$JS.API.CONSUMER.MSG.NEXT." + DeliveriesStream + "." + consumer,
		"$JS.API.CONSUMER.INFO." + DeliveriesStream + "." + consumer,
		"$JS.ACK." + DeliveriesStream + "." + consumer + ".>",
		"$JS.ACK.*.*." + DeliveriesStream + "." + consumer + ".>",
	}
}
