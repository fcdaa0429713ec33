package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

// locate explains why a document does not decode into t in the words of
// the spec, not of Go: it walks the document as plain JSON beside t and
// reports every unknown field with its full path and the closest known
// name, values of the wrong kind ("a number", "a list of strings"), and
// durations that do not parse. encoding/json names a nested unknown field
// by its last name only, and a duration by nothing at all.
func locate(data []byte, t reflect.Type) []joberr.Problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return nil
	}
	var w walker
	w.walk("", doc, t)
	return w.problems
}

var durationType = reflect.TypeFor[Duration]()

// walker collects the problems of one document.
type walker struct{ problems []joberr.Problem }

func (w *walker) add(path, format string, args ...any) {
	w.problems = append(w.problems, joberr.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// walk checks v, found at path, against t, and what v holds against t's
// fields or elements.
func (w *walker) walk(path string, v any, t reflect.Type) {
	if t == durationType {
		s, ok := v.(string)
		if _, err := time.ParseDuration(s); !ok || err != nil {
			w.add(path, `expected a duration such as "90s" or "15m", got %s`, valueWords(v))
		}
		return
	}
	obj, isObject := v.(map[string]any)
	list, isList := v.([]any)
	switch kind := t.Kind(); {
	case kind == reflect.Struct && isObject:
		w.fields(path, obj, t)
	case kind == reflect.Slice && isList:
		for i, el := range list {
			w.walk(fmt.Sprintf("%s[%d]", path, i), el, t.Elem())
		}
	case kind == reflect.Map && isObject:
		for _, key := range sortedKeys(obj) {
			w.walk(join(path, key), obj[key], t.Elem())
		}
	case !fits(v, kind):
		w.add(path, "expected %s, got %s", kindWords(t), valueWords(v))
	}
}

// fields checks an object's members against the struct t: unknown names
// with the closest known one, known ones against their fields' types.
func (w *walker) fields(path string, obj map[string]any, t reflect.Type) {
	fields := jsonFields(t)
	for _, key := range sortedKeys(obj) {
		f, ok := fields[key]
		if !ok {
			msg := "unknown field"
			if near := closest(key, fields); near != "" {
				msg += "; did you mean " + join(path, near) + "?"
			}
			w.add(join(path, key), "%s", msg)
			continue
		}
		w.walk(join(path, key), obj[key], f)
	}
}

// fits reports whether a decoded JSON value is of the kind a Go value of
// kind takes. Structs, slices and maps fit only the values walk descends
// into; kinds the spec does not use fit anything.
func fits(v any, kind reflect.Kind) bool {
	switch kind {
	case reflect.Struct, reflect.Slice, reflect.Map:
		return false
	case reflect.String:
		_, ok := v.(string)
		return ok
	case reflect.Bool:
		_, ok := v.(bool)
		return ok
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(json.Number)
		_, err := strconv.ParseInt(string(n), 10, 64)
		return ok && err == nil
	case reflect.Float64, reflect.Float32:
		_, ok := v.(json.Number)
		return ok
	}
	return true
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
