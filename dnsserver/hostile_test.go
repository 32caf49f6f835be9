package dnsserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Raw DNS messages, built byte by byte so that they can be anything a
// hostile client sends, not only what a DNS library is willing to pack.

// Header flag bits.
const (
	flagQR = 1 << 15
	flagRD = 1 << 8
)

// opcodeBits places an opcode in the header flags.
func opcodeBits(op uint16) uint16 { return op << 11 }

// header packs a message header.
func header(id, flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 0, 12)
	for _, v := range []uint16{id, flags, qd, an, ns, ar} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}

// wireName packs labels as an uncompressed name ending in the root.
func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// pointer is a compression pointer to offset.
func pointer(offset uint16) []byte { return binary.BigEndian.AppendUint16(nil, 0xc000|offset) }

// typeClass packs a question's (or record's) type and class.
func typeClass(qtype, qclass uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, qtype), qclass)
}

// optRR packs an OPT record advertising size, with an EDNS version.
func optRR(size uint16, version uint8) []byte {
	b := []byte{0} // owner: the root
	b = append(b, typeClass(dns.TypeOPT, size)...)
	b = append(b, 0, version, 0, 0) // extended rcode, version, DO and Z
	return append(b, 0, 0)          // no options
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// hostileKey is the TSIG key of the signed hostile queries: a key zkdns,
// holding none, cannot know.
const hostileKey = "client-key."

// tsigRR packs a TSIG record as a client signing with hostileKey writes it,
// with a MAC that only the key's holder could check.
func tsigRR() []byte { return tsigOf(dns.ClassANY, 0) }

// tsigOf packs tsigRR's record with the given class and TTL.
func tsigOf(class uint16, ttl uint32) []byte {
	m := new(dns.Msg)
	m.Extra = []dns.RR{&dns.TSIG{
		Hdr:        dns.RR_Header{Name: hostileKey, Rrtype: dns.TypeTSIG, Class: class, Ttl: ttl},
		Algorithm:  dns.HmacSHA256,
		TimeSigned: 1_700_000_000,
		Fudge:      300,
		MACSize:    32,
		MAC:        strings.Repeat("ab", 32),
		OrigId:     hostileID,
	}}
	packed, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return packed[12:] // the record alone, after an empty message's header
}

// echoesQuestion checks that a reply repeats the question asked.
func echoesQuestion(name string, qtype uint16) func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
	return func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
		if len(reply.Question) != 1 || reply.Question[0].Name != name || reply.Question[0].Qtype != qtype {
			t.Errorf("question section %v, want %s %s echoed", reply.Question, name, dns.TypeToString[qtype])
		}
	}
}

// hostileID is the ID of every hostile query; probes use another.
const hostileID = 0x4242

// hostileCase is a raw packet and what the server must do with it.
type hostileCase struct {
	name    string
	packet  []byte
	noReply bool // the packet is dropped: no reply at all
	rcode   int  // otherwise the reply's rcode
	// check looks further at the reply; tcp says how it came.
	check func(t *testing.T, reply *dns.Msg, size int, tcp bool)
}

// hostileCases are the malformed and unwelcome queries the server is
// sent in TestServeHostileInput. Each is also a seed of FuzzAnswer.
func hostileCases() []hostileCase {
	q := func(flags uint16, labels []string, qtype, qclass uint16) []byte {
		return cat(header(hostileID, flags, 1, 0, 0, 0), wireName(labels...), typeClass(qtype, qclass))
	}
	payments := []string{"payments", "local"}
	long := strings.Repeat("a", 63)
	tooLong := []string{long, long, long, long, "local"} // 4×64 + 7 bytes: past 255

	// A question whose name points at an answer record whose name points
	// back at the question: each pointer is valid alone, together a loop.
	mutualLoop := cat(header(hostileID, flagRD, 1, 1, 0, 0),
		pointer(18), typeClass(dns.TypeA, dns.ClassINET), // offset 12: question
		pointer(12), typeClass(dns.TypeA, dns.ClassINET), []byte{0, 0, 0, 0, 0, 0}) // offset 18: answer
	// A pointer to a name that starts with a pointer to itself.
	selfLoop := cat(header(hostileID, flagRD, 1, 0, 0, 0), pointer(12), typeClass(dns.TypeA, dns.ClassINET))

	noOPTAnswer := func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
		if len(reply.Answer) != 0 {
			t.Errorf("answer section %v, want none", reply.Answer)
		}
	}
	return []hostileCase{
		// Messages that do not parse: FORMERR when a header can be read.
		{name: "compression pointer to itself", packet: selfLoop, rcode: dns.RcodeFormatError},
		{name: "compression pointers to each other", packet: mutualLoop, rcode: dns.RcodeFormatError},
		{name: "compression pointer past the end", packet: cat(header(hostileID, 0, 1, 0, 0, 0), pointer(0x3fff), typeClass(dns.TypeA, dns.ClassINET)), rcode: dns.RcodeFormatError},
		{name: "name over 255 bytes", packet: q(flagRD, tooLong, dns.TypeA, dns.ClassINET), rcode: dns.RcodeFormatError},
		{name: "label with the reserved 01 type bits", packet: cat(header(hostileID, 0, 1, 0, 0, 0), []byte{0x40, 'a', 0}, typeClass(dns.TypeA, dns.ClassINET)), rcode: dns.RcodeFormatError},
		{name: "question count larger than the questions", packet: cat(header(hostileID, 0, 2, 0, 0, 0), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET)), rcode: dns.RcodeFormatError},
		{name: "65535 questions and none present", packet: header(hostileID, 0, 0xffff, 0, 0, 0), rcode: dns.RcodeFormatError},
		{name: "question cut in its type", packet: cat(header(hostileID, 0, 1, 0, 0, 0), wireName(payments...), []byte{0}), rcode: dns.RcodeFormatError},
		// The DNS library reads a question that ends after its name or its
		// type as one of class 0, which no query has.
		{name: "question cut after its name", packet: cat(header(hostileID, 0, 1, 0, 0, 0), wireName(payments...)), rcode: dns.RcodeFormatError},
		{name: "question cut after its type", packet: cat(header(hostileID, 0, 1, 0, 0, 0), wireName(payments...), []byte{0, 1}), rcode: dns.RcodeFormatError},
		{name: "question of the reserved class 0", packet: q(flagRD, payments, dns.TypeA, 0), rcode: dns.RcodeFormatError},
		{name: "no question", packet: header(hostileID, flagRD, 0, 0, 0, 0), rcode: dns.RcodeFormatError},
		{name: "two OPT records", packet: cat(header(hostileID, 0, 1, 0, 0, 2), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), optRR(1232, 0), optRR(1232, 0)), rcode: dns.RcodeFormatError},
		{name: "answer record cut short: FORMERR that echoes the question", packet: cat(header(hostileID, flagRD, 1, 1, 0, 0), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), wireName(payments...), []byte{0}),
			rcode: dns.RcodeFormatError, check: echoesQuestion("payments.local.", dns.TypeA)},
		{name: "OPT record in the answer section", packet: cat(header(hostileID, 0, 1, 1, 0, 0), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), optRR(1232, 0)), rcode: dns.RcodeFormatError},
		{name: "OPT record in the authority section", packet: cat(header(hostileID, 0, 1, 0, 1, 0), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), optRR(1232, 0)), rcode: dns.RcodeFormatError},
		{name: "TSIG record before the OPT record", packet: cat(header(hostileID, 0, 1, 0, 0, 2), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), tsigRR(), optRR(1232, 0)), rcode: dns.RcodeFormatError},
		{name: "TSIG record of class IN", packet: cat(header(hostileID, 0, 1, 0, 0, 1), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), tsigOf(dns.ClassINET, 0)), rcode: dns.RcodeFormatError},
		{name: "TSIG record with a TTL", packet: cat(header(hostileID, 0, 1, 0, 0, 1), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), tsigOf(dns.ClassANY, 60)), rcode: dns.RcodeFormatError},
		{name: "TSIG record with empty RDATA", packet: cat(header(hostileID, 0, 1, 0, 0, 1), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), wireName(), typeClass(dns.TypeTSIG, dns.ClassANY), []byte{0, 0, 0, 0, 0, 0}), rcode: dns.RcodeFormatError},
		{name: "two TSIG records", packet: cat(header(hostileID, 0, 1, 0, 0, 2), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), tsigRR(), tsigRR()), rcode: dns.RcodeFormatError},

		// Dropped: too short to be a message, or not a query at all.
		{name: "five bytes", packet: []byte{0x42, 0x42, 0x01, 0x00, 0x00}, noReply: true},
		{name: "empty", packet: []byte{}, noReply: true},
		{name: "a response (QR set)", packet: q(flagQR, payments, dns.TypeA, dns.ClassINET), noReply: true},

		// Opcodes other than QUERY: NOTIMP, known or not.
		{name: "opcode IQUERY", packet: q(opcodeBits(dns.OpcodeIQuery), payments, dns.TypeA, dns.ClassINET), rcode: dns.RcodeNotImplemented},
		{name: "opcode NOTIFY", packet: q(opcodeBits(dns.OpcodeNotify), []string{"local"}, dns.TypeSOA, dns.ClassINET), rcode: dns.RcodeNotImplemented},
		{name: "opcode UPDATE", packet: q(opcodeBits(dns.OpcodeUpdate), []string{"local"}, dns.TypeSOA, dns.ClassINET), rcode: dns.RcodeNotImplemented},
		{name: "unassigned opcode 3", packet: q(opcodeBits(3), payments, dns.TypeA, dns.ClassINET), rcode: dns.RcodeNotImplemented},
		{name: "unassigned opcode 15", packet: q(opcodeBits(15), payments, dns.TypeA, dns.ClassINET), rcode: dns.RcodeNotImplemented},

		// Classes other than IN and ANY: REFUSED, without answers.
		{name: "class CHAOS", packet: q(flagRD, []string{"version", "bind"}, dns.TypeTXT, dns.ClassCHAOS), rcode: dns.RcodeRefused, check: noOPTAnswer},
		{name: "class NONE", packet: q(flagRD, payments, dns.TypeA, dns.ClassNONE), rcode: dns.RcodeRefused, check: noOPTAnswer},
		{name: "unassigned class 0xff00", packet: q(flagRD, payments, dns.TypeA, 0xff00), rcode: dns.RcodeRefused, check: noOPTAnswer},

		// Types and sizes: answered within what was asked for.
		{name: "unassigned type 0xfeed is NODATA", packet: q(flagRD, payments, 0xfeed, dns.ClassINET), rcode: dns.RcodeSuccess,
			check: func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
				if len(reply.Answer) != 0 || len(reply.Ns) != 1 || reply.Ns[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("answer %v authority %v, want no answer and the SOA", reply.Answer, reply.Ns)
				}
			}},
		{name: "EDNS size 65535 is held to 1232 bytes over UDP", packet: cat(header(hostileID, flagRD, 1, 0, 0, 1), wireName("big", "local"), typeClass(dns.TypeSRV, dns.ClassINET), optRR(65535, 0)),
			rcode: dns.RcodeSuccess, check: func(t *testing.T, reply *dns.Msg, size int, tcp bool) {
				if !tcp && (size > 1232 || !reply.Truncated) {
					t.Errorf("UDP reply of %d bytes, TC %v; want at most 1232 bytes with TC", size, reply.Truncated)
				}
				if tcp && (reply.Truncated || len(reply.Answer) != 60) {
					t.Errorf("TCP reply has %d SRV, TC %v; want all 60", len(reply.Answer), reply.Truncated)
				}
			}},
		{name: "EDNS size 1 counts as 512", packet: cat(header(hostileID, flagRD, 1, 0, 0, 1), wireName("big", "local"), typeClass(dns.TypeSRV, dns.ClassINET), optRR(1, 0)),
			rcode: dns.RcodeSuccess, check: func(t *testing.T, reply *dns.Msg, size int, tcp bool) {
				if !tcp && (size > 512 || !reply.Truncated || len(reply.Answer) == 0) {
					t.Errorf("UDP reply of %d bytes, TC %v, %d SRV; want some SRV in 512 bytes with TC", size, reply.Truncated, len(reply.Answer))
				}
			}},
		{name: "EDNS version 1", packet: cat(header(hostileID, flagRD, 1, 0, 0, 1), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), optRR(1232, 1)), rcode: dns.RcodeBadVers},
		{name: "ANY is one small record", packet: q(flagRD, payments, dns.TypeANY, dns.ClassINET), rcode: dns.RcodeSuccess,
			check: func(t *testing.T, reply *dns.Msg, size int, _ bool) {
				if len(reply.Answer) != 1 || reply.Answer[0].Header().Rrtype != dns.TypeHINFO || len(reply.Extra) != 0 || size > 100 {
					t.Errorf("ANY reply of %d bytes: answer %v extra %v; want one HINFO alone", size, reply.Answer, reply.Extra)
				}
			}},
		{name: "NXDOMAIN carries only the SOA", packet: q(flagRD, []string{"nope", "local"}, dns.TypeSRV, dns.ClassINET), rcode: dns.RcodeNameError,
			check: func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
				if len(reply.Answer) != 0 || len(reply.Extra) != 0 || len(reply.Ns) != 1 || reply.Ns[0].Header().Rrtype != dns.TypeSOA {
					t.Errorf("answer %v authority %v extra %v; want the SOA alone", reply.Answer, reply.Ns, reply.Extra)
				}
			}},
		{name: "outside the zone without upstreams: REFUSED, no recursion", packet: q(flagRD, []string{"example", "com"}, dns.TypeA, dns.ClassINET), rcode: dns.RcodeRefused,
			check: func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
				if reply.RecursionAvailable || reply.Authoritative || len(reply.Answer)+len(reply.Ns)+len(reply.Extra) != 0 {
					t.Errorf("RA %v AA %v, %d records; want a bare refusal", reply.RecursionAvailable, reply.Authoritative, len(reply.Answer)+len(reply.Ns)+len(reply.Extra))
				}
			}},
		{name: "signed with a TSIG key zkdns does not hold: NOTAUTH, BADKEY, unsigned", packet: cat(header(hostileID, flagRD, 1, 0, 0, 2), wireName(payments...), typeClass(dns.TypeA, dns.ClassINET), optRR(1232, 0), tsigRR()),
			rcode: dns.RcodeNotAuth, check: func(t *testing.T, reply *dns.Msg, size int, tcp bool) {
				echoesQuestion("payments.local.", dns.TypeA)(t, reply, size, tcp)
				sig := reply.IsTsig()
				if sig == nil || len(reply.Answer)+len(reply.Ns) != 0 || reply.Authoritative {
					t.Fatalf("answer %v authority %v extra %v AA %v; want no records but OPT and TSIG, no AA", reply.Answer, reply.Ns, reply.Extra, reply.Authoritative)
				}
				if sig.Hdr.Name != hostileKey || sig.Algorithm != dns.HmacSHA256 || sig.Error != dns.RcodeBadKey || sig.MACSize != 0 || sig.MAC != "" || sig.OrigId != hostileID || sig.TimeSigned != 1_700_000_000 {
					t.Errorf("TSIG %v; want %s's BADKEY error, without a MAC", sig, hostileKey)
				}
				if reply.IsEdns0() == nil {
					t.Error("no OPT record in the reply to an EDNS0 query")
				}
			}},
		{name: "signed without EDNS0, for a name not there: NOTAUTH, BADKEY", packet: cat(header(hostileID, flagRD, 1, 0, 0, 1), wireName("nope", "local"), typeClass(dns.TypeA, dns.ClassINET), tsigRR()),
			rcode: dns.RcodeNotAuth, check: func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
				if sig := reply.IsTsig(); sig == nil || sig.Error != dns.RcodeBadKey || len(reply.Extra) != 1 || len(reply.Ns) != 0 {
					t.Errorf("authority %v extra %v; want the BADKEY TSIG alone", reply.Ns, reply.Extra)
				}
			}},
		{name: "signed, outside the zone: REFUSED", packet: cat(header(hostileID, flagRD, 1, 0, 0, 1), wireName("example", "com"), typeClass(dns.TypeA, dns.ClassINET), tsigRR()), rcode: dns.RcodeRefused},
		{name: "zone transfer", packet: q(0, []string{"local"}, dns.TypeAXFR, dns.ClassINET), rcode: dns.RcodeRefused, check: noOPTAnswer},
		{name: "junk after the question is ignored", packet: cat(q(flagRD, payments, dns.TypeA, dns.ClassINET), bytes.Repeat([]byte{0xc0}, 5000)), rcode: dns.RcodeSuccess,
			check: func(t *testing.T, reply *dns.Msg, _ int, _ bool) {
				if len(reply.Answer) != 1 {
					t.Errorf("answer %v, want the one A record", reply.Answer)
				}
			}},
	}
}

// TestServeHostileInput sends every hostile case over real UDP and TCP
// sockets. Each must get the rcode it calls for, or no reply at all; no
// UDP reply may be larger than the client can take; and the server must
// go on answering afterwards, on the same socket.
func TestServeHostileInput(t *testing.T) {
	srv := serve(t, "127.0.0.1:0", serverSnapshot(), false)
	for _, tc := range hostileCases() {
		for _, proto := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				want := 1
				if tc.noReply {
					want = 0
				}
				replies := exchangeRaw(t, proto, srv.addr, tc.packet, want)
				if tc.noReply {
					if len(replies) != 0 {
						t.Fatalf("%d replies to a packet that must be dropped", len(replies))
					}
					return
				}
				if len(replies) != 1 {
					t.Fatalf("%d replies, want one", len(replies))
				}
				raw := replies[0]
				reply := new(dns.Msg)
				if err := reply.Unpack(raw); err != nil {
					t.Fatalf("reply does not unpack: %v", err)
				}
				if reply.Id != hostileID || !reply.Response {
					t.Errorf("reply ID %#x response %v, want %#x true", reply.Id, reply.Response, hostileID)
				}
				if reply.Rcode != tc.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[reply.Rcode], dns.RcodeToString[tc.rcode])
				}
				if reply.RecursionAvailable {
					t.Error("RA set by a server without upstreams")
				}
				if proto == "udp" {
					if limit := udpLimitOf(tc.packet); len(raw) > limit {
						t.Errorf("UDP reply of %d bytes to a client that takes %d", len(raw), limit)
					}
				}
				if tc.check != nil {
					tc.check(t, reply, len(raw), proto == "tcp")
				}
			})
		}
	}
}

// udpLimitOf is the largest UDP reply the sender of packet takes: its
// EDNS0 size within [512, 1232] when the packet parses with one, else 512.
func udpLimitOf(packet []byte) int {
	m := new(dns.Msg)
	if m.Unpack(packet) != nil || m.IsEdns0() == nil {
		return 512
	}
	return max(512, min(int(m.IsEdns0().UDPSize()), 1232))
}

// probeID marks the query exchangeRaw sends after the packet under test.
const probeID = 0xbeef

// exchangeRaw sends packet to addr over proto on a fresh socket, then a
// probe query for the apex SOA on the same socket, and returns every reply
// other than the probe's. The probe must be answered NOERROR: the server
// keeps working after whatever packet came first.
//
// Over TCP the server takes one message at a time from a connection, so
// the probe's reply comes after any reply to packet. Over UDP several
// readers share the socket and replies may cross: exchangeRaw reads until
// it has the probe's reply and the replies it expects, and when it expects
// none it waits a little longer for a late one.
func exchangeRaw(t *testing.T, proto, addr string, packet []byte, expect int) [][]byte {
	t.Helper()
	conn, err := net.DialTimeout(proto, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := &dns.Conn{Conn: conn, UDPSize: dns.MaxMsgSize}
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if proto == "tcp" {
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(packet)))
		_, err = conn.Write(append(framed, packet...))
	} else if len(packet) > 0 {
		_, err = conn.Write(packet)
	}
	if err != nil {
		t.Fatalf("send packet: %v", err)
	}
	probe := new(dns.Msg).SetQuestion("local.", dns.TypeSOA)
	probe.Id = probeID
	if err := dc.WriteMsg(probe); err != nil {
		t.Fatalf("send probe: %v", err)
	}

	var others [][]byte
	probed := false
	for !probed || proto == "udp" && len(others) < max(expect, 1) {
		if probed && expect == 0 {
			// Only a late reply to packet can still come.
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		raw, err := dc.ReadMsgHeader(nil)
		var ne net.Error
		if probed && errors.As(err, &ne) && ne.Timeout() {
			break
		}
		if err != nil {
			t.Fatalf("read replies (probe answered: %v): %v", probed, err)
		}
		if len(raw) >= 2 && binary.BigEndian.Uint16(raw) == probeID && !probed {
			reply := new(dns.Msg)
			if err := reply.Unpack(raw); err != nil || reply.Rcode != dns.RcodeSuccess {
				t.Fatalf("probe answered %v (%v), want NOERROR", reply, err)
			}
			probed = true
			continue
		}
		others = append(others, raw)
	}
	return others
}

// TestFuzzCorpusCommitted checks that every seed of the fuzz targets is
// also in testdata/fuzz, so that `go test` runs them without -fuzz. Run
// with -update-corpus to write them.
func TestFuzzCorpusCommitted(t *testing.T) {
	targets := map[string]map[string][]byte{
		"FuzzAnswer":   fuzzSeeds(t),
		"FuzzFastPath": fuzzSeeds(t), // the same packets: the fast path must agree with Answer on all
		"FuzzRelay":    relaySeeds(t),
	}
	for target, seeds := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, packet := range seeds {
			t.Run(target+"/"+name, func(t *testing.T) {
				path := filepath.Join(dir, name)
				want := corpusFile(packet)
				if *updateCorpus {
					if err := os.WriteFile(path, want, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("seed not committed: %v (run go test -run TestFuzzCorpusCommitted -update-corpus)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s holds\n%s\nwant\n%s", path, got, want)
				}
			})
		}
	}
}
