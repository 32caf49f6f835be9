package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// table is a Markdown table whose cells are already formatted.
type table struct {
	columns []string
	rows    [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// markdown renders t with every column padded to its widest cell, so the
// same text reads as a table in a terminal and in a Markdown viewer. Rows
// shorter than the header are padded with empty cells; a pipe inside a cell
// is escaped.
func (t table) markdown() string {
	widths := make([]int, len(t.columns))
	cell := func(row []string, i int) string {
		if i < len(row) {
			return strings.ReplaceAll(row[i], "|", `\|`)
		}
		return ""
	}
	for i := range t.columns {
		widths[i] = max(3, utf8.RuneCountInString(cell(t.columns, i)))
		for _, r := range t.rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell(r, i)))
		}
	}
	var b strings.Builder
	line := func(cells func(i int) string) {
		b.WriteString("|")
		for i, w := range widths {
			c := cells(i)
			b.WriteString(" ")
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", w-utf8.RuneCountInString(c)))
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	line(func(i int) string { return cell(t.columns, i) })
	line(func(i int) string { return strings.Repeat("-", widths[i]) })
	for _, r := range t.rows {
		line(func(i int) string { return cell(r, i) })
	}
	return b.String()
}

// section is one target's part of the report.
type section struct {
	title   string
	intro   string // what was measured, in a sentence or two
	verdict table  // measure | zkdns | reference | ratio | target | verdict
	details []titledTable
	notes   []string // caveats, in prose
	// commands are the exact command lines the section's numbers came
	// from, with the bench's temporary paths in them.
	commands []string
	// code is preformatted text (a profile top) shown under codeTitle.
	codeTitle, code string
	checks          []check
}

type titledTable struct {
	title string
	table table
}

// check is one target's outcome.
type check struct {
	name string
	pass bool
}

func newSection(title, intro string) *section {
	// Every section's main table has these columns.
	columns := []string{"measure", "zkdns", "reference", "ratio", "target", "verdict"}
	return &section{title: title, intro: intro, verdict: table{columns: columns}}
}

// target adds a row that is judged against a target and records its
// outcome.
func (s *section) target(measure, ours, reference, ratio, goal string, pass bool) {
	s.verdict.add(measure, ours, reference, ratio, goal, verdictWord(pass))
	s.checks = append(s.checks, check{name: s.title + ": " + measure, pass: pass})
}

// info adds a row that is reported but judged against nothing.
func (s *section) info(measure, ours, reference, ratio string) {
	s.verdict.add(measure, ours, reference, ratio, "(reported)", "")
}

// skipped adds a row for a measurement that could not be made, which
// counts as a failure of its target.
func (s *section) skipped(measure, goal, why string) {
	s.verdict.add(measure, "not measured", why, "", goal, "FAIL")
	s.checks = append(s.checks, check{name: s.title + ": " + measure, pass: false})
}

func (s *section) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", s.title)
	if s.intro != "" {
		fmt.Fprintf(&b, "%s\n\n", s.intro)
	}
	b.WriteString(s.verdict.markdown())
	for _, d := range s.details {
		fmt.Fprintf(&b, "\n%s\n\n%s", d.title, d.table.markdown())
	}
	if len(s.notes) > 0 {
		b.WriteString("\n")
		for _, n := range s.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(s.commands) > 0 {
		b.WriteString("\nCommands:\n\n")
		for _, c := range s.commands {
			fmt.Fprintf(&b, "- `%s`\n", c)
		}
	}
	if s.code != "" {
		fmt.Fprintf(&b, "\n%s\n\n```text\n%s\n```\n", s.codeTitle, strings.TrimRight(s.code, "\n"))
	}
	return b.String()
}

func verdictWord(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

// fmtDelta prints the difference d with its sign, + or -.
func fmtDelta(d time.Duration) string {
	if d < 0 {
		return fmtDuration(d)
	}
	return "+" + fmtDuration(d)
}

// fmtDuration prints d with three significant digits in the unit that
// suits it: 850µs, 1.27ms, 2.50s.
func fmtDuration(d time.Duration) string {
	switch a := d.Abs(); {
	case a == 0:
		return "0"
	case a < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case a < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + "µs"
	case a < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + "ms"
	default:
		return sig3(d.Seconds()) + "s"
	}
}

// sig3 prints v with three significant digits, and no fraction above 100.
func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// fmtCount prints n with thousands separators: 1234567 → 1,234,567.
func fmtCount[T ~int | ~int64 | ~uint64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteString("-")
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(",")
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fmtRate prints a rate per second, rounded to a whole number.
func fmtRate(perSecond float64) string {
	return fmtCount(int64(math.Round(perSecond)))
}

// fmtRatio prints a/b as "2.15×", or "n/a" when b is zero.
func fmtRatio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return sig3(a/b) + "×"
}

// fmtBytes prints a size in the binary unit that suits it.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return sig3(float64(n)/(1<<30)) + " GiB"
	case n >= 1<<20:
		return sig3(float64(n)/(1<<20)) + " MiB"
	case n >= 1<<10:
		return sig3(float64(n)/(1<<10)) + " KiB"
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// fmtPer prints a count per event, such as requests per change, to two
// decimals with trailing zeros dropped: 2, 1.5, 0.83.
func fmtPer(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// plural prints a count of things: "1 run", "2 runs".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmtCount(n) + " " + thing + "s"
}
