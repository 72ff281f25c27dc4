package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
)

// webhook posts the event as JSON, signed with HMAC-SHA256.
type webhook struct {
	http   *httpClient
	secret []byte
}

// WebhookBody is the JSON body of a generic webhook delivery. It is the
// same on every retry of a delivery.
type WebhookBody struct {
	DeliveryID   string    `json:"delivery_id"`
	Event        EventKind `json:"event"`
	Intervention *Event    `json:"intervention,omitempty"`
	// Deployment is set, instead of Intervention, for a deployment event.
	Deployment *DeploymentEvent `json:"deployment,omitempty"`
	// Fleet is set, instead of Intervention, for a fleet event.
	Fleet *FleetEvent `json:"fleet,omitempty"`
}

// Header names of a generic webhook delivery.
const (
	HeaderDelivery  = "X-Deployer-Delivery"
	HeaderEvent     = "X-Deployer-Event"
	HeaderSignature = "X-Deployer-Signature"
)

func (w *webhook) Deliver(ctx context.Context, m Message) (Receipt, error) {
	wb := WebhookBody{DeliveryID: m.DeliveryID, Event: m.Event.Kind}
	switch {
	case m.Event.Deployment != nil:
		wb.Deployment = m.Event.Deployment
	case m.Event.Fleet != nil:
		wb.Fleet = m.Event.Fleet
	default:
		ev := m.Event
		wb.Intervention = &ev
	}
	body, err := json.Marshal(wb)
	if err != nil {
		return Receipt{}, fmt.Errorf("webhook %s: encode: %w", m.DeliveryID, err)
	}
	h := http.Header{
		"Content-Type": {"application/json"},
		HeaderDelivery: {m.DeliveryID},
		HeaderEvent:    {string(m.Event.Kind)},
	}
	if len(w.secret) > 0 {
		h.Set(HeaderSignature, Sign(w.secret, body))
	}
	if _, err := w.http.do(ctx, request{method: http.MethodPost, url: w.http.base, body: body, header: h}); err != nil {
		return Receipt{}, fmt.Errorf("webhook %s: %w", m.DeliveryID, err)
	}
	return Receipt{}, nil
}

// Sign returns the X-Deployer-Signature value for body:
// "sha256=" and the hex HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
