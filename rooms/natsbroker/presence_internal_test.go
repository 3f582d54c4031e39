package natsbroker

import (
	"testing"
	"time"

	"github.com/wschan/wschan/rooms"
)

func TestPresenceRoundTrip(t *testing.T) {
	t.Parallel()
	for _, u := range []rooms.PresenceUpdate{
		{Hub: "h1", Members: 3, TTL: 15 * time.Second, Joined: "m-1", Sync: true},
		{Hub: "h2", Members: 0, TTL: time.Second, Left: "m-2"},
		{Hub: "h3", Members: 7, TTL: 600 * time.Millisecond},
	} {
		b, err := encodePresence(u)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodePresence(b); err != nil || got != u {
			t.Errorf("decodePresence(encodePresence(%+v)) = %+v, %v", u, got, err)
		}
	}
	for _, bad := range []string{
		`{"n":1,"ttl_ms":1000}`, `{"hub":"h","n":-1,"ttl_ms":1000}`, `{"hub":"h","n":1,"ttl_ms":0}`,
		`{"hub":"h","n":1,"ttl_ms":1000,"join":"a","leave":"b"}`, `{"hub":"h","n":1,"ttl_ms":99999999999}`, `[]`, `{`,
	} {
		if u, err := decodePresence([]byte(bad)); err == nil {
			t.Errorf("decodePresence(%s) = %+v, want an error", bad, u)
		}
	}
}

// FuzzPresence feeds any bytes to decodePresence: no panic, and whatever
// decodes encodes to an update that decodes the same. Seeds are valid
// updates, also cut in two.
func FuzzPresence(f *testing.F) {
	valid, _ := encodePresence(rooms.PresenceUpdate{Hub: "abc", Members: 2, TTL: time.Second, Joined: "m-1", Sync: true})
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[len(valid)/2:])
	f.Add([]byte(`{"hub":"h","n":0,"ttl_ms":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodePresence(b)
		if err != nil {
			return
		}
		again, err := encodePresence(u)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", u, err)
		}
		if u2, err := decodePresence(again); err != nil || u2 != u {
			t.Fatalf("%+v encodes to %s, which decodes to %+v, %v", u, again, u2, err)
		}
	})
}
