package receiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// Mode is how a Printer shows deliveries.
type Mode int

// Modes of a Printer.
const (
	Full  Mode = iota // a summary line and the body (JSON indented)
	Quiet             // the summary line only
	JSON              // one JSON object per line
)

// Printer writes deliveries to W.
type Printer struct {
	W    io.Writer
	Mode Mode
}

// Print writes one delivery.
func (p Printer) Print(d Delivery) {
	if p.Mode == JSON {
		b, err := json.Marshal(d)
		if err != nil { // a body that is valid JSON always encodes
			b = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
		}
		_, _ = fmt.Fprintf(p.W, "%s\n", b)
		return
	}
	_, _ = io.WriteString(p.W, printable(Summary(d))+"\n")
	if p.Mode == Quiet {
		return
	}
	switch {
	case len(d.Body) > 0:
		var buf bytes.Buffer
		if json.Indent(&buf, d.Body, "  ", "  ") == nil {
			_, _ = fmt.Fprintf(p.W, "  %s\n", buf.Bytes())
		}
	case d.Text != "":
		_, _ = fmt.Fprintf(p.W, "  %s\n", strings.ReplaceAll(printable(d.Text), "\n", "\n  "))
	}
}

// Summary is a delivery's line: time, event type, ids, the check's
// result and the answer given.
func Summary(d Delivery) string {
	var b strings.Builder
	b.WriteString(d.Time.Format(time.RFC3339))
	b.WriteString("  ")
	if d.Method != "POST" {
		fmt.Fprintf(&b, "%s %s  answered %d (%s)", d.Method, d.Path, d.Status, d.Reason)
		return b.String()
	}
	b.WriteString(orDash(d.EventType))
	fmt.Fprintf(&b, "  delivery=%s", orDash(d.DeliveryID))
	if d.WebhookID != "" {
		fmt.Fprintf(&b, " webhook=%s", d.WebhookID)
	}
	if d.EventID != "" {
		fmt.Fprintf(&b, " event=%s", d.EventID)
	}
	if d.Verified {
		b.WriteString("  verified")
	} else {
		fmt.Fprintf(&b, "  NOT verified (%s)", d.Reason)
	}
	fmt.Fprintf(&b, "  -> %d", d.Status)
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable replaces control characters other than newline and tab, so
// what a sender put in a body or a header cannot drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
