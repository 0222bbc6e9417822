package kv

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func recordSamples() []*Message {
	t0 := time.Date(2026, 12, 7, 1, 2, 3, 456789, time.UTC)
	return []*Message{
		{},
		{ID: "01M9703N9MYH51VXJN316AKGM1", State: StateQueued, From: "1000@127.0.0.1", To: "4486@127.0.0.1",
			FromFull: "<sip:1000@127.0.0.1>;tag=bench", ContentType: "text/plain", Body: []byte("hello ü"),
			BodySource: BodyQueryExact, Profile: "internal", Context: "public", Hostname: "vm",
			CoreUUID: "0e2f3ccc-1fbd-4726-9b43-d899a68a0b89", EventSeq: 3486, EventTime: 1796605072687824,
			Received: t0, Order: OrderKey{Epoch: 1796605063663541142, Seq: 3486}, Updated: t0,
			Expires: t0.Add(7 * 24 * time.Hour),
			History: []HistoryEntry{{At: t0, Kind: EventReceived, State: StateQueued}}},
		{ID: "x", State: StateDelivered, Body: []byte{}, BodySource: BodyAwaiting, Received: t0,
			Reason:  "exact body not received over ESL in time; the query copy is used",
			Updated: t0.Add(-time.Second), Notices: []string{NoticeStored, "other"}, BodyFinal: true, BodyFallback: true,
			Attempts: 3, Refusals: -1, InFlight: "intake", LastAttempt: t0.Add(time.Minute), LastResult: "200 OK",
			UncertainResends: 2, Delivered: t0.Add(time.Hour), Events: 9,
			History: []HistoryEntry{
				{At: t0, Kind: EventReceived, State: StateQueued},
				{At: t0.Add(time.Millisecond), Kind: EventBody, State: StateQueued, Detail: "exact body not received over ESL in time; the query copy is used"},
				{At: time.Time{}, Kind: "new kind", State: "new state", Detail: "free text ü", Device: "dev-1"},
			},
			Devices: []DeviceCopy{{Key: "a"}, {Key: "b", State: StateDead, Attempts: 5, Refusals: 5, InFlight: "b-1",
				LastAttempt: t0.Add(2 * time.Second), LastResult: "480", UncertainResends: 1, Delivered: t0.Add(-time.Hour)}}},
		{ID: "01M9", State: StateNoBody, Body: []byte("\xff\xfe not utf-8"), Reason: "free reason",
			History: []HistoryEntry{{Kind: EventNoBody, State: StateNoBody, Detail: "free reason"}}},
	}
}

// TestRecordDecodesAsJSONDid: the compact record gives back what the JSON record
// gave back, field for field, and is smaller.
func TestRecordDecodesAsJSONDid(t *testing.T) {
	for i, m := range recordSamples() {
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := decodeMessage(js) // the JSON path: records of earlier versions
		if err != nil {
			t.Fatal(err)
		}
		rec, err := encodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMessage(rec)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sample %d:\n got %+v\nwant %+v", i, got, want)
		}
		if len(rec) >= len(js) {
			t.Errorf("sample %d: record %d bytes, JSON %d", i, len(rec), len(js))
		}
		if st, err := peekState(rec); err != nil || st != m.State {
			t.Errorf("sample %d: peekState %q %v, want %q", i, st, err, m.State)
		}
	}
}

// TestRecordDamageIsAnError: every truncation and a byte flipped anywhere give
// an error or a message, never a panic, and a truncated record never decodes.
func TestRecordDamageIsAnError(t *testing.T) {
	for _, m := range recordSamples() {
		rec := encodeRecord(m, 0, recordRoom)
		for n := range len(rec) {
			if _, err := decodeMessage(rec[:n]); err == nil && n > 0 {
				t.Fatalf("record truncated to %d of %d bytes decoded", n, len(rec))
			}
		}
		for i := 1; i < len(rec); i++ {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				bad := append([]byte{}, rec...)
				bad[i] ^= x
				decodeMessage(bad)
			}
		}
	}
	if _, err := decodeMessage([]byte{0x03, 0}); err == nil {
		t.Fatal("a record of an unknown version decoded")
	}
}

// TestRecordCoversEveryField fails when Message or one of its parts gains a
// field that encodeRecord does not write: add it to the record (at the end of
// its part, with a new version byte if old records must still decode) and here.
func TestRecordCoversEveryField(t *testing.T) {
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[Message]():      32,
		reflect.TypeFor[HistoryEntry](): 5,
		reflect.TypeFor[DeviceCopy]():   9,
		reflect.TypeFor[OrderKey]():     2,
	} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, the record knows %d", typ, typ.NumField(), n)
		}
	}
}

// TestRecordPeekQueuedReadsWhatDecodeReads: the journal's applier reads a new
// message's ID, recipient, Core-UUID and order without decoding the rest;
// they must be what the whole decode gives, and a damaged record an error.
func TestRecordPeekQueuedReadsWhatDecodeReads(t *testing.T) {
	for i, m := range recordSamples() {
		rec := encodeNewMessage(m)[1:]
		full, err := decodeMessage(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := peekQueued(rec)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		want := &Message{ID: full.ID, To: full.To, CoreUUID: full.CoreUUID, Order: full.Order}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sample %d:\n got %+v\nwant %+v", i, got, want)
		}
		// Cut anywhere: never a panic; cut within the ID, an error.
		for n := range len(rec) {
			if _, err := peekQueued(rec[:n]); err == nil && n <= len(full.ID) {
				t.Errorf("sample %d cut at %d: no error", i, n)
			}
		}
	}
}
