package pipe

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wschan/wschan"
)

// event is one JSONL line. The field names are part of the format scripts
// rely on (see the package doc): change them only with a new type.
type event struct {
	Type     string  `json:"type"`
	Time     string  `json:"time"`
	Data     *string `json:"data,omitempty"`
	Base64   *string `json:"base64,omitempty"`
	Protocol string  `json:"protocol,omitempty"`
	Code     int     `json:"code,omitempty"`
	Reason   *string `json:"reason,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// message writes one received message.
func (r *runner) message(m wschan.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.cfg.JSONL {
		r.buf = append(append(r.buf[:0], m.Data...), r.sep)
		_, err := r.cfg.Out.Write(r.buf)
		return err
	}
	e := event{Type: "text"}
	if m.Type == wschan.Binary {
		s := base64.StdEncoding.EncodeToString(m.Data)
		e.Type, e.Base64 = "binary", &s
	} else {
		s := string(m.Data)
		e.Data = &s
	}
	return r.writeEvent(e)
}

// open writes the "open" event.
func (r *runner) open() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.JSONL {
		_ = r.writeEvent(event{Type: "open", Protocol: r.ch.Protocol()})
	}
}

// state reports a state change from Config.States.
func (r *runner) state(sc StateChange) {
	switch sc.State {
	case wschan.StateOpen:
		r.open()
	case wschan.StateReconnecting:
		if !r.cfg.JSONL {
			r.warn("no connection (%v); reconnecting", sc.Err)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		e := event{Type: "reconnecting"}
		if sc.Err != nil {
			e.Error = sc.Err.Error()
		}
		_ = r.writeEvent(e)
	}
}

// closeEvent writes the "close" event, with the error for an abnormal end.
func (r *runner) closeEvent(end *EndError) {
	if !r.cfg.JSONL {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reason := r.ch.CloseReason()
	e := event{Type: "close", Code: int(r.ch.CloseCode()), Reason: &reason}
	if end != nil {
		e.Error = end.Err.Error()
	}
	_ = r.writeEvent(e)
}

// writeEvent writes e as one line; r.mu must be held. Write errors of the
// events other than messages are left for the message writes to report.
func (r *runner) writeEvent(e event) error {
	e.Time = r.cfg.Now().UTC().Format(time.RFC3339Nano)
	b := bytes.NewBuffer(r.buf[:0])
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return err
	}
	r.buf = b.Bytes()
	_, err := r.cfg.Out.Write(r.buf)
	return err
}

// warn writes one line to Config.Err.
func (r *runner) warn(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.cfg.Err, format+"\n", args...)
}
