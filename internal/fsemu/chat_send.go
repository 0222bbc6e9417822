package fsemu

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// sendChat is sofia_presence_chat_send's SIP part for one contact: a
// MESSAGE to the registered contact (Request-URI, To and destination = the
// contact, To with sofia's empty display name, a new Call-ID,
// X-FS-Sending-Message = Core-UUID; sip_02, sip_06). It returns at once; the channel gets the
// final status, or 408 when Timer F ends the transaction. The transaction
// lives on in the background until it has a final answer or Timer F, even
// when nobody waits any more (a blocking chat that gave up can still be
// delivered; docs/decisions.md §19).
func (s *Switch) sendChat(r registration, from sip.Header, ctype string, body []byte) <-chan int {
	result := make(chan int, 1)
	req := sip.NewRequest(sip.MESSAGE, r.uri)
	req.SetTransport("UDP")
	req.SetDestination(r.dest()) // the registered contact
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("To", `"" <`+r.uri.String()+`>`))
	callID := sip.CallIDHeader(newUUID())
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.nextCSeq(), MethodName: sip.MESSAGE})
	req.AppendHeader(sip.NewHeader("User-Agent", fsUserAgent))
	req.AppendHeader(sip.NewHeader("Allow", fsAllow))
	req.AppendHeader(sip.NewHeader("Supported", fsSupported))
	req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	req.SetBody(body)
	req.AppendHeader(sip.NewHeader("X-FS-Sending-Message", s.esl.CoreUUID()))

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		result <- 503
		return result
	}
	s.wg.Add(1)
	s.mu.Unlock()
	tx, err := s.cl.TransactionRequest(s.base, req)
	if err != nil {
		s.wg.Done()
		s.log.Debug("fsemu: MESSAGE not sent", "err", err)
		result <- 503 // what sofia reports for a transport error
		return result
	}
	s.mu.Lock()
	s.pending[tx] = struct{}{}
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			tx.Terminate()
			s.mu.Lock()
			delete(s.pending, tx)
			s.mu.Unlock()
		}()
		timerF := time.NewTimer(s.opts.TimerF)
		defer timerF.Stop()
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					continue
				}
				result <- res.StatusCode
				return
			case <-tx.Done():
				result <- 408
				return
			case <-timerF.C:
				result <- 408
				return
			case <-s.done:
				return
			}
		}
	}()
	return result
}
