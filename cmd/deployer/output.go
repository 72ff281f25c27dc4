package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// outputFormat is what -o asks for.
type outputFormat string

// The output formats of every command that prints data.
const (
	formatTable outputFormat = "table"
	formatJSON  outputFormat = "json"
	formatYAML  outputFormat = "yaml"
)

// format is -o checked: table (the default), json or yaml (yml).
func (g *globalOptions) format() (outputFormat, error) {
	return parseFormat(g.output)
}

func parseFormat(s string) (outputFormat, error) {
	switch s {
	case "table", "":
		return formatTable, nil
	case "json":
		return formatJSON, nil
	case "yaml", "yml":
		return formatYAML, nil
	}
	return "", usageErrorf("-o %q: want table, json or yaml", s)
}

// structured says the output is data (JSON or YAML) rather than a table.
func (f outputFormat) structured() bool { return f == formatJSON || f == formatYAML }

// print writes v as JSON or YAML. YAML has exactly the keys of the JSON,
// in the same order: v is encoded to JSON first and the YAML is built
// from that, so struct tags (omitempty, renames, custom MarshalJSON) hold
// for both.
func (f outputFormat) print(w io.Writer, v any) error {
	if f != formatYAML {
		return printJSON(w, v)
	}
	return printYAML(w, v)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printYAML writes v in YAML with the field names and order of its JSON.
func printYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := jsonToYAML(dec)
	if err != nil {
		return fmt.Errorf("yaml output: %w", err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return err
	}
	return enc.Close()
}

// jsonToYAML reads one JSON value from dec as a YAML node, keeping the
// order of object keys.
func jsonToYAML(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := k.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", k)
				}
				val, err := jsonToYAML(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, val)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				val, err := jsonToYAML(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case json.Number:
		tag := "!!int"
		if _, err := t.Int64(); err != nil {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, errors.New("unexpected JSON token")
}
