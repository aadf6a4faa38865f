package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// printer writes a command's result: tables for people, or the API's JSON
// as it came.
type printer struct {
	out    io.Writer
	format string
}

func (p printer) json() bool { return p.format == formatJSON }

// raw writes an answer's JSON as the API sent it, one document per line.
func (p printer) raw(b []byte) error {
	b = bytes.TrimSpace(b)
	_, err := fmt.Fprintf(p.out, "%s\n", b)
	return err
}

// table writes rows under a header, columns aligned with two spaces.
func (p printer) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	writeRow(tw, header)
	for _, r := range rows {
		writeRow(tw, r)
	}
	return tw.Flush()
}

// fields writes name: value lines, values aligned.
func (p printer) fields(kv [][2]string) error {
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	for _, f := range kv {
		_, _ = fmt.Fprintf(tw, "%s:\t%s\n", f[0], cell(f[1]))
	}
	return tw.Flush()
}

func writeRow(w io.Writer, cells []string) {
	c := make([]string, len(cells))
	for i, s := range cells {
		c[i] = cell(s)
	}
	_, _ = fmt.Fprintln(w, strings.Join(c, "\t"))
}

// cell makes a value safe for one table cell: no tabs, newlines or other
// control characters (a value from the server must not forge rows or move
// the terminal's cursor), "-" for nothing.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func intStr(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

func i64Str(p *int64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatInt(*p, 10)
}

func join(s []string) string { return strings.Join(s, ",") }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// when shows an RFC 3339 time shorter (seconds, UTC); what does not parse
// is shown as it came.
func when(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func whenPtr(p *string) string {
	if p == nil {
		return ""
	}
	return when(*p)
}

// indented is JSON indented for reading, or the bytes as they are when
// they are not JSON; "" for nothing or null.
func indented(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return string(b)
	}
	return buf.String()
}
