package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// jiraField is one entry of GET /rest/api/2/field.
type jiraField struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Custom bool   `json:"custom"`
	Schema struct {
		Type  string `json:"type"`
		Items string `json:"items"`
	} `json:"schema"`
}

// customFields expands the configured field templates with vars and
// returns them keyed by field id, each value shaped for the field's type.
// Empty values are left out.
func (j *Jira) customFields(ctx context.Context, vars map[string]string) (map[string]any, error) {
	if len(j.cfg.Fields) == 0 {
		return nil, nil
	}
	all, err := j.fieldList(ctx)
	if err != nil {
		return nil, err
	}
	r := replacer(vars)
	out := make(map[string]any, len(j.cfg.Fields))
	for _, name := range sortedKeys(j.cfg.Fields) {
		f, err := lookupField(all, name)
		if err != nil {
			return nil, err
		}
		v := r.Replace(j.cfg.Fields[name])
		if v == "" {
			continue
		}
		if out[f.ID], err = fieldValue(f, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fieldList fetches the field list once and caches it until forgotten.
func (j *Jira) fieldList(ctx context.Context) ([]jiraField, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fields != nil {
		return j.fields, nil
	}
	resp, err := j.call(ctx, http.MethodGet, "/rest/api/2/field", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("list fields: %w", err)
	}
	var fields []jiraField
	if err := json.Unmarshal(resp, &fields); err != nil {
		return nil, fmt.Errorf("list fields: %v: %w", err, ErrUnavailable)
	}
	j.fields = fields
	return fields, nil
}

func (j *Jira) forgetFields() {
	j.mu.Lock()
	j.fields = nil
	j.mu.Unlock()
}

// lookupField finds a field by its id or, case-insensitively, its name;
// a name shared by several fields is an error naming their ids.
func lookupField(all []jiraField, name string) (jiraField, error) {
	var hits []jiraField
	for _, f := range all {
		if f.ID == name {
			return f, nil
		}
		if strings.EqualFold(f.Name, name) {
			hits = append(hits, f)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return jiraField{}, fmt.Errorf("jira field %q does not exist (check fields: in the notify config): %w", name, ErrRejected)
	}
	ids := make([]string, len(hits))
	for i, f := range hits {
		ids[i] = f.ID
	}
	return jiraField{}, fmt.Errorf("jira field name %q is ambiguous (%s): give the id instead: %w", name, strings.Join(ids, ", "), ErrRejected)
}

// fieldValue shapes v for the field's schema type, as the create-issue
// API expects it.
func fieldValue(f jiraField, v string) (any, error) {
	switch f.Schema.Type {
	case "number":
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("jira field %q is a number, value %q is not: %w", f.Name, v, ErrRejected)
		}
		return n, nil
	case "option":
		return map[string]string{"value": v}, nil
	case "priority", "user", "resolution", "component", "version":
		return map[string]string{"name": v}, nil
	case "array":
		item, err := fieldValue(jiraField{Name: f.Name, Schema: struct {
			Type  string `json:"type"`
			Items string `json:"items"`
		}{Type: f.Schema.Items}}, v)
		return []any{item}, err
	}
	return v, nil
}

func replacer(vars map[string]string) *strings.Replacer {
	var pairs []string
	for _, k := range sortedKeys(vars) {
		pairs = append(pairs, "{"+k+"}", vars[k])
	}
	return strings.NewReplacer(pairs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}
