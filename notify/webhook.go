package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// WebhookSchema is the version of the JSON document a webhook channel
// posts; it changes when a field changes meaning or goes away.
const WebhookSchema = 1

// WebhookDoc is the JSON document a webhook channel posts: the message as
// a chat service shows it, plus the fields a receiver can route on.
type WebhookDoc struct {
	Schema int `json:"schema"`
	// Title is "[servername] subject", Message the plain text.
	Title   string `json:"title"`
	Message string `json:"message"`
	// Server is the servername; Status the most severe status the
	// notices report (OK, WARNING, CRITICAL, UNKNOWN); Kind failure,
	// recovery, system, test, or digest when they differ; Jobs the jobs,
	// each once, joined by ", "; Notices how many notices it carries.
	Server  string `json:"server"`
	Status  string `json:"status"`
	Kind    string `json:"kind"`
	Jobs    string `json:"jobs"`
	Notices int    `json:"notices"`
}

// maxWebhookReply is how much of a refusing webhook's answer is read and
// quoted (shortened) in the error.
const maxWebhookReply = 512

// postWebhook posts m as a WebhookDoc. Any 2xx answer is success; a
// redirect is not followed (a POST would turn into a GET elsewhere) but
// is a failure, like any other status.
func (c *Channel) postWebhook(ctx context.Context, m ChatMessage) error {
	n, _ := strconv.Atoi(m.Fields[FieldNotices])
	body, err := json.Marshal(WebhookDoc{
		Schema: WebhookSchema, Title: m.Title, Message: m.Text,
		Server: m.Fields[FieldServer], Status: m.Fields[FieldStatus], Kind: m.Fields[FieldKind],
		Jobs: m.Fields[FieldJobs], Notices: n,
	})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.webhook.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "checker")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer res.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(res.Body, maxWebhookReply))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		msg := fmt.Sprintf("webhook answered %s", res.Status)
		if r := truncateRunes(strings.TrimSpace(oneLine(string(reply))), 200); r != "" {
			msg += ": " + r
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}
