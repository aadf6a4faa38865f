package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

// pageFlags select the pages of a list.
type pageFlags struct {
	limit  int
	cursor string
	all    bool
}

func (f *pageFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.limit, "limit", 0, "items per page, 1 to 500 (default: the server's, 50)")
	cmd.Flags().StringVar(&f.cursor, "cursor", "", "the page after this cursor (next_cursor of the previous page)")
	cmd.Flags().BoolVar(&f.all, "all", false, "follow the cursors and list every page")
}

// collect fetches one page, or every page with --all. raw is the API's
// answer as it came for one page, or the pages' items joined in the same
// shape for several.
func collect[T any](ctx context.Context, f pageFlags,
	fetch func(context.Context, apiclient.PageOptions) (apiclient.Page[T], apiclient.Raw, error)) ([]T, []byte, *string, error) {
	o := apiclient.PageOptions{Limit: f.limit, Cursor: f.cursor}
	var items []T
	var rawItems []json.RawMessage
	for pages := 0; ; pages++ {
		p, raw, err := fetch(ctx, o)
		if err != nil {
			return nil, nil, nil, err
		}
		items = append(items, p.Data...)
		if !f.all || p.NextCursor == nil || *p.NextCursor == "" {
			if pages == 0 {
				return items, raw, p.NextCursor, nil
			}
			var rp apiclient.Page[json.RawMessage]
			if err := json.Unmarshal(raw, &rp); err != nil {
				return nil, nil, nil, fmt.Errorf("decoding a page: %w", err)
			}
			rawItems = append(rawItems, rp.Data...)
			if rawItems == nil {
				rawItems = []json.RawMessage{}
			}
			b, err := json.Marshal(apiclient.Page[json.RawMessage]{Data: rawItems})
			return items, b, nil, err
		}
		var rp apiclient.Page[json.RawMessage]
		if err := json.Unmarshal(raw, &rp); err != nil {
			return nil, nil, nil, fmt.Errorf("decoding a page: %w", err)
		}
		rawItems = append(rawItems, rp.Data...)
		o.Cursor = *p.NextCursor
	}
}

// listed prints a list: its JSON, or a table and a hint about the next
// page on stderr.
func (a *app) listed(raw []byte, next *string, header []string, rows [][]string) error {
	p := a.out()
	if p.json() {
		return p.raw(raw)
	}
	if err := p.table(header, rows); err != nil {
		return err
	}
	if next != nil && *next != "" {
		fmt.Fprintf(a.env.Stderr, "more: --cursor %s (or --all)\n", *next)
	}
	return nil
}
