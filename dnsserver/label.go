package dnsserver

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// maxLabel is the longest label DNS allows (RFC 1035 §2.3.4).
const maxLabel = 63

// suffixLen is the length of the collision suffix: '-' and 6 hex digits.
const suffixLen = 7

// Label turns a raw name (a service name or a znode name) into a DNS label:
// each percent-escape (%XX) stands for the byte it encodes, ASCII letters
// are lowercased, every byte outside [a-z0-9-] becomes '-',
// runs of '-' collapse into one, '-' is trimmed from both ends, and the
// result is cut to 63 bytes (and trimmed of a '-' the cut leaves at the
// end). A name with nothing left gets "x" followed by the 8 hex digits of
// the FNV-1a hash of the raw name, so it still has a stable label.
//
// Label alone does not make labels unique: two raw names can share one.
// The snapshot breaks such ties, see resolveLabels.
func Label(name string) string {
	b := make([]byte, 0, min(len(name), maxLabel))
	for i := 0; i < len(name) && len(b) < maxLabel; i++ {
		c := name[i]
		// Dubbo names each provider's znode by its URL-encoded URL; read
		// as it is, every escape would leave a fragment like "-3a-2f-2f"
		// in the label, where the decoded URL reads "dubbo-192-0-2-10-…".
		if c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]) {
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
		}
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		default:
			c = '-'
		}
		// A leading '-' or a second '-' in a row would only be trimmed or
		// collapsed later, so never write it.
		if c == '-' && (len(b) == 0 || b[len(b)-1] == '-') {
			continue
		}
		b = append(b, c)
	}
	label := strings.TrimRight(string(b), "-")
	if label == "" {
		return fmt.Sprintf("x%08x", hash32(name, 0))
	}
	return label
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex is the value of the hex digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// resolveLabels gives every raw name a label of its own. bases maps each
// raw name to Label(name); the result maps each raw name to its final label.
//
// When several names share a base label, the one that is the base itself
// keeps it; only when none is does the first in byte order of those whose
// lowercased form is the base keep it. Every other name of the group gets
// a suffix of '-' and 6 hex digits of its hash. A name that needs no
// change therefore keeps its label however many look-alikes appear,
// those differing only in case included: "Search" appearing beside a
// served "search" must not take its answers, though it sorts first. Should a suffixed label still clash (a 24-bit hash collision, or a
// name that is literally someone else's suffixed label) it is hashed again
// with a counter until it is free; the order of that walk is byte order, so
// the outcome depends only on the set of names.
func resolveLabels(bases map[string]string) map[string]string {
	return resolveLabelsBeside(bases, nil)
}

// resolveLabelsBeside is resolveLabels for one part of a larger set:
// inUse reports labels held by names outside bases, which a suffixed label
// must not take. nil means there are none. The result may be bases itself.
func resolveLabelsBeside(bases map[string]string, inUse func(label string) bool) map[string]string {
	uses := make(map[string]int, len(bases))
	for _, base := range bases {
		uses[base]++
	}
	if len(uses) == len(bases) {
		// No two names share a base label, so each keeps its own: the
		// common case, and every rebuild of a service comes through here.
		return bases
	}
	final := make(map[string]string, len(bases))
	taken := make(map[string]bool, len(bases))
	groups := make(map[string][]string)
	for name, base := range bases {
		if uses[base] == 1 {
			final[name] = base
			taken[base] = true
			continue
		}
		groups[base] = append(groups[base], name)
	}

	var clashing []string
	for base, names := range groups {
		slices.Sort(names)
		keeper := slices.Index(names, base)
		if keeper < 0 {
			keeper = slices.IndexFunc(names, func(name string) bool { return strings.ToLower(name) == base })
		}
		for i, name := range names {
			if i == keeper {
				final[name] = base
				taken[base] = true
				continue
			}
			clashing = append(clashing, name)
		}
	}

	slices.Sort(clashing)
	for _, name := range clashing {
		for salt := uint32(0); ; salt++ {
			label := withSuffix(bases[name], hash32(name, salt))
			if !taken[label] && (inUse == nil || !inUse(label)) {
				final[name] = label
				taken[label] = true
				break
			}
		}
	}
	return final
}

// withSuffix appends '-' and the top 24 bits of h in hex to base, cutting
// base so that the label stays within 63 bytes.
func withSuffix(base string, h uint32) string {
	if len(base) > maxLabel-suffixLen {
		base = strings.TrimRight(base[:maxLabel-suffixLen], "-")
	}
	return fmt.Sprintf("%s-%06x", base, h>>8)
}

// hash32 is the FNV-1a hash of name; a non-zero salt is mixed in after it so
// that a clashing suffix can be re-rolled deterministically.
func hash32(name string, salt uint32) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	if salt != 0 {
		h.Write([]byte{0, byte(salt >> 24), byte(salt >> 16), byte(salt >> 8), byte(salt)})
	}
	return h.Sum32()
}
