package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// locate explains why a document does not decode into t in the words of
// the spec, not of Go: it walks the document as plain JSON beside t and
// reports every unknown field with its full path and the closest known
// name, values of the wrong kind ("a number", "a list of strings"), and
// durations that do not parse. encoding/json names a nested unknown field
// by its last name only, and a duration by nothing at all.
func locate(data []byte, t reflect.Type) []Problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return nil
	}
	var problems []Problem
	walk(&problems, "", doc, t)
	return problems
}

var durationType = reflect.TypeFor[Duration]()

func walk(problems *[]Problem, path string, v any, t reflect.Type) {
	wrong := func() {
		*problems = append(*problems, Problem{Path: path, Message: fmt.Sprintf("expected %s, got %s", kindWords(t), valueWords(v))})
	}
	if t == durationType {
		s, ok := v.(string)
		if _, err := time.ParseDuration(s); !ok || err != nil {
			*problems = append(*problems, Problem{Path: path, Message: fmt.Sprintf(`expected a duration such as "90s" or "15m", got %s`, valueWords(v))})
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			wrong()
			return
		}
		fields := jsonFields(t)
		for _, key := range sortedKeys(obj) {
			f, ok := fields[key]
			if !ok {
				msg := "unknown field"
				if near := closest(key, fields); near != "" {
					msg += "; did you mean " + join(path, near) + "?"
				}
				*problems = append(*problems, Problem{Path: join(path, key), Message: msg})
				continue
			}
			walk(problems, join(path, key), obj[key], f)
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			wrong()
			return
		}
		for i, el := range list {
			walk(problems, fmt.Sprintf("%s[%d]", path, i), el, t.Elem())
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			wrong()
			return
		}
		for _, key := range sortedKeys(obj) {
			walk(problems, join(path, key), obj[key], t.Elem())
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			wrong()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			wrong()
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(json.Number)
		if _, err := strconv.ParseInt(string(n), 10, 64); !ok || err != nil {
			wrong()
		}
	case reflect.Float64, reflect.Float32:
		if _, ok := v.(json.Number); !ok {
			wrong()
		}
	}
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// closest is the known name a misspelled key most likely meant: one within
// a few edits, or one containing it ("frames" for "totalFrames").
func closest(key string, fields map[string]reflect.Type) string {
	best, bestDist := "", 0
	k := strings.ToLower(key)
	for name := range fields {
		n := strings.ToLower(name)
		d := editDistance(k, n)
		if d > max(2, len(k)/2) && !(len(k) >= 4 && strings.Contains(n, k)) {
			continue
		}
		if best == "" || d < bestDist || (d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// kindWords says what a spec field holds, in words.
func kindWords(t reflect.Type) string {
	if t == durationType {
		return `a duration such as "90s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			return "a list of strings"
		case reflect.Struct:
			return "a list of objects"
		}
		return "a list"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Struct:
		return "an object"
	}
	return t.String()
}

// valueWords says what a JSON value is, in words.
func valueWords(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return "the string " + strconv.Quote(v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprint(v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lineColumn turns a byte offset of data into a 1-based line and column.
func lineColumn(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}
