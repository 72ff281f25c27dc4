package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// FindIssue returns the key of the issue of the project labelled label,
// resolved or not, or "".
func (j *Jira) FindIssue(ctx context.Context, label string) (string, error) {
	return j.search(ctx, fmt.Sprintf("labels = %q", label))
}

// FindOrCreate returns the issue labelled t.DedupeLabel when there is
// one (created false), else files t (created true). t.DedupeLabel is
// required.
func (j *Jira) FindOrCreate(ctx context.Context, t Ticket) (key string, created bool, err error) {
	if t.DedupeLabel == "" {
		return "", false, fmt.Errorf("find or create issue: no dedupe label: %w", ErrRejected)
	}
	if key, err = j.FindIssue(ctx, t.DedupeLabel); err != nil || key != "" {
		return key, false, err
	}
	key, err = j.CreateIssue(ctx, t) // searches again: a concurrent create is found, not doubled
	return key, err == nil, err
}

// HasComment says whether one of the latest 50 comments of issue key
// holds marker.
func (j *Jira) HasComment(ctx context.Context, key, marker string) (bool, error) {
	return j.hasComment(ctx, key, marker)
}

// SetFields sets, on issue key, the configured fields whose template uses
// the placeholder {uses}, expanded with vars: an issue's Outcome field,
// filed while running, follows the outcome. No such field: no call.
func (j *Jira) SetFields(ctx context.Context, key string, vars map[string]string, uses string) error {
	templates := map[string]string{}
	for name, tmpl := range j.cfg.Fields {
		if strings.Contains(tmpl, "{"+uses+"}") {
			templates[name] = tmpl
		}
	}
	if len(templates) == 0 {
		return nil
	}
	all, err := j.fieldList(ctx)
	if err != nil {
		return err
	}
	r := replacer(vars)
	fields := map[string]any{}
	for _, name := range sortedKeys(templates) {
		f, err := lookupField(all, name)
		if err != nil {
			return err
		}
		v := r.Replace(templates[name])
		if v == "" {
			continue
		}
		if fields[f.ID], err = fieldValue(f, v); err != nil {
			return err
		}
	}
	if len(fields) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"fields": fields})
	if err != nil {
		return fmt.Errorf("update %s: encode: %w", key, err)
	}
	if _, err := j.call(ctx, http.MethodPut, "/rest/api/2/issue/"+url.PathEscape(key), nil, body); err != nil {
		return fmt.Errorf("update fields of %s: %w", key, err)
	}
	return nil
}
