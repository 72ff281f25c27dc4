package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Message is one notification waiting in (or delivered from) the outbox.
// DeliveryID is assigned by Enqueue, unique per state file, and stays the
// same across retries and restarts, so receivers can deduplicate.
type Message struct {
	Seq            uint64          `json:"seq"`
	DeliveryID     string          `json:"delivery_id"`
	Channel        string          `json:"channel"` // which notifier: "slack", "webhook", "jira", ...
	Kind           string          `json:"kind"`    // "new", "reminder", "resolved", ...
	InterventionID uint64          `json:"intervention_id,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Created        time.Time       `json:"created"`
	Attempts       int             `json:"attempts,omitempty"`
	NextAttempt    time.Time       `json:"next_attempt,omitzero"`
	LastError      string          `json:"last_error,omitempty"`
	SentAt         time.Time       `json:"sent_at,omitzero"`
}

// Sent reports whether the message was delivered.
func (m Message) Sent() bool { return !m.SentAt.IsZero() }

func indexMessage(tx *bolt.Tx, m Message) error {
	b := tx.Bucket(indexOutboxPending)
	if m.Sent() {
		return b.Delete(u64key(m.Seq))
	}
	return b.Put(u64key(m.Seq), nil)
}

func putMessage(tx *bolt.Tx, m Message) error {
	if err := putJSON(tx.Bucket(bucketOutbox), u64key(m.Seq), m); err != nil {
		return err
	}
	return indexMessage(tx, m)
}

// Enqueue adds m to the outbox and returns it with Seq, DeliveryID and
// Created set. It is due at once unless m.NextAttempt is set.
func (s *Store) Enqueue(m Message) (Message, error) {
	if m.Channel == "" {
		return Message{}, fmt.Errorf("enqueue: channel: %w", ErrInvalid)
	}
	m.Created = s.now()
	m.SentAt, m.Attempts, m.LastError = time.Time{}, 0, ""
	err := s.update(func(tx *bolt.Tx) error {
		seq, err := tx.Bucket(bucketOutbox).NextSequence()
		if err != nil {
			return err
		}
		m.Seq = seq
		m.DeliveryID = fmt.Sprintf("%s-%d", tx.Bucket(bucketMeta).Get(keyDeliveryPrefix), seq)
		return putMessage(tx, m)
	})
	if err != nil {
		return Message{}, fmt.Errorf("enqueue %s: %w", m.Channel, err)
	}
	return m, nil
}

// Pending returns up to limit undelivered messages whose NextAttempt is
// not after Now, oldest first. limit <= 0 means no limit.
func (s *Store) Pending(limit int) ([]Message, error) {
	now := s.now()
	var out []Message
	err := s.view(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketOutbox)
		c := tx.Bucket(indexOutboxPending).Cursor()
		for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
			var m Message
			if err := getJSON(all, k, &m); err != nil {
				return fmt.Errorf("outbox index %x: %w", k, err)
			}
			if !m.NextAttempt.After(now) {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending messages: %w", err)
	}
	return out, nil
}

// MarkSent records the delivery of message deliveryID. Marking a message
// twice keeps the first delivery time.
func (s *Store) MarkSent(deliveryID string) error {
	now := s.now()
	return s.modifyMessage("mark sent", deliveryID, func(m *Message) {
		if !m.Sent() {
			m.SentAt = now
			m.Attempts++
			m.LastError = ""
		}
	})
}

// MarkFailed records a failed delivery attempt and when to try again.
func (s *Store) MarkFailed(deliveryID, reason string, next time.Time) error {
	return s.modifyMessage("mark failed", deliveryID, func(m *Message) {
		m.Attempts++
		m.LastError = reason
		m.NextAttempt = next
	})
}

// Message returns one message by delivery id; ErrNotFound if unknown.
func (s *Store) Message(deliveryID string) (Message, error) {
	var m Message
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		m, err = getMessage(tx, deliveryID)
		return err
	})
	if err != nil {
		return Message{}, fmt.Errorf("message %s: %w", deliveryID, err)
	}
	return m, nil
}

func (s *Store) modifyMessage(op, deliveryID string, fn func(*Message)) error {
	err := s.update(func(tx *bolt.Tx) error {
		m, err := getMessage(tx, deliveryID)
		if err != nil {
			return err
		}
		fn(&m)
		return putMessage(tx, m)
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, deliveryID, err)
	}
	return nil
}

// getMessage finds a message by the sequence number at the end of its
// delivery id, and checks the whole id matches.
func getMessage(tx *bolt.Tx, deliveryID string) (Message, error) {
	var m Message
	i := strings.LastIndexByte(deliveryID, '-')
	seq, err := strconv.ParseUint(deliveryID[i+1:], 10, 64)
	if err != nil {
		return m, ErrNotFound
	}
	if err := getJSON(tx.Bucket(bucketOutbox), u64key(seq), &m); err != nil {
		return m, err
	}
	if m.DeliveryID != deliveryID {
		return Message{}, ErrNotFound
	}
	return m, nil
}
