package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// slack posts to a Slack incoming webhook.
type slack struct{ http *httpClient }

// slackPayload is the body of an incoming-webhook call: text is the
// notification fallback, blocks the rendered message.
type slackPayload struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"` // mrkdwn or plain_text
	Text string `json:"text"`
}

func (s *slack) Deliver(ctx context.Context, m Message) (Receipt, error) {
	body, err := json.Marshal(slackMessage(m))
	if err != nil {
		return Receipt{}, fmt.Errorf("slack %s: encode: %w", m.DeliveryID, err)
	}
	_, err = s.http.do(ctx, request{method: http.MethodPost, url: s.http.base, body: body,
		header: http.Header{"Content-Type": {"application/json"}}})
	if err != nil {
		return Receipt{}, fmt.Errorf("slack %s: %w", m.DeliveryID, err)
	}
	return Receipt{}, nil
}

// slackMessage renders what, where, since, count and the next action.
func slackMessage(m Message) slackPayload {
	e := m.Event
	if e.Fleet != nil {
		head := fleetTitle(e)
		return slackPayload{Text: slackEscape(head), Blocks: []slackBlock{
			{Type: "header", Text: &slackText{"plain_text", truncate(head, 150)}},
			{Type: "section", Text: mrkdwn(slackEscape(truncate(fleetText(e), 2900)))},
			{Type: "context", Elements: []slackText{*mrkdwn("delivery " + slackEscape(m.DeliveryID))}},
		}}
	}
	if d := e.Deployment; d != nil {
		head := deploymentTitle(e)
		text := countsText(d.Counts)
		if d.Reason != "" {
			text += "\nreason: " + d.Reason
		}
		if d.Ticket != "" {
			text += "\nticket: " + d.Ticket
		}
		return slackPayload{Text: slackEscape(head + ": " + countsText(d.Counts)), Blocks: []slackBlock{
			{Type: "header", Text: &slackText{"plain_text", truncate(head, 150)}},
			{Type: "section", Text: mrkdwn(slackEscape(truncate(text, 2900)))},
			{Type: "context", Elements: []slackText{*mrkdwn("delivery " + slackEscape(m.DeliveryID))}},
		}}
	}
	head := title(e)
	p := slackPayload{Text: slackEscape(head + ": " + e.Summary)}
	p.Blocks = append(p.Blocks,
		slackBlock{Type: "header", Text: &slackText{"plain_text", truncate(head, 150)}},
		slackBlock{Type: "section", Text: mrkdwn(slackEscape(truncate(e.Summary, 2900)))},
		slackBlock{Type: "section", Fields: []slackText{
			*mrkdwn("*Where*\n" + slackEscape(location(e))),
			*mrkdwn("*Since*\n" + slackEscape(since(e))),
			*mrkdwn(fmt.Sprintf("*Count*\n%d", e.Count)),
			*mrkdwn(fmt.Sprintf("*Intervention*\n#%d %s", e.ID, slackEscape(e.InterventionKind))),
		}})
	if e.Kind == EventResolved {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section", Text: mrkdwn(slackEscape(truncate(resolution(e), 2900)))})
	} else if e.NextAction != "" {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section",
			Text: mrkdwn("*Next action*\n```" + slackEscape(truncate(e.NextAction, 2800)) + "```")})
	}
	if e.Evidence != "" && e.Kind == EventNew {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section",
			Text: mrkdwn("*Evidence*\n```" + slackEscape(truncate(e.Evidence, 2800)) + "```")})
	}
	p.Blocks = append(p.Blocks, slackBlock{Type: "context",
		Elements: []slackText{*mrkdwn("delivery " + slackEscape(m.DeliveryID))}})
	return p
}

func mrkdwn(s string) *slackText { return &slackText{"mrkdwn", s} }

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
