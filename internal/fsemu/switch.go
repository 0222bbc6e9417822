package fsemu

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// fsUserAgent is the User-Agent sofia puts on everything it sends
// (as recorded from FreeSWITCH 1.10.12, testdata/esl).
const fsUserAgent = "FreeSWITCH-mod_sofia/1.10.12-release~64bit"

// fsAllow and fsSupported are the Allow and Supported headers of every
// sofia request and response in the recorded SIP traces.
const (
	fsAllow     = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY, PUBLISH, SUBSCRIBE"
	fsSupported = "timer, path, replaces"
)

func init() {
	// sipgo refuses UDP messages over 1300 bytes and reads 32 KiB; sofia
	// sent 40,000-byte bodies over loopback UDP (docs/decisions.md
	// §18). Set here, before any sipgo goroutine exists, so that no
	// test races on these package variables.
	sip.UDPMTUSize = 65507 + 200
	sip.TransportBufferReadSize = 65535
}

// SwitchOptions configure a Switch. Zero values take the configuration
// of the recorded FreeSWITCH runs (testdata/esl).
type SwitchOptions struct {
	Domain  string            // default "127.0.0.1"
	Profile string            // default "internal"
	Context string            // default "public"
	Users   map[string]string // user -> password; default 1000..1003 with "1234"
	ESL     ESLOptions        // passed to NewESLServer
	// XMLCurl is the chatplan binding; nil means none: the static chatplan
	// (no public context) is used and every message is delivered directly.
	XMLCurl *XMLCurl
	// ChatResultFloor: a blocking chat polls every 100 ms, so its result
	// never comes before this and always on a multiple of it. Default
	// 100 ms; < 0 means 0.
	ChatResultFloor time.Duration
	// ChatGiveUp: a blocking chat reports failure (code 0) after this;
	// default 19.93 s as measured (scenario 09).
	ChatGiveUp time.Duration
	// ChatThreads is the number of mod_sms chat threads; default 2. Inbound
	// messages go to them round robin, which reorders bursts.
	ChatThreads int
	// RegCheckInterval is sofia's registration-thread-frequency: how often
	// expired registrations are removed (sofia::expire). Default 30 s.
	RegCheckInterval time.Duration
	// TimerF ends an unanswered outgoing MESSAGE transaction (sofia: 32 s).
	// Default: sipgo's Timer F (64*T1 = 32 s); shorter values end it early.
	TimerF time.Duration
	Logger *slog.Logger
	// Modules are the loaded modules (modules.conf); nil means every module the
	// emulator knows. APIs of modules not loaded answer "Command not found", an
	// XMLCurl without mod_xml_curl is never asked, and without mod_sms no chatplan
	// runs at all.
	Modules []string
	// MultipleRegistrations is profile internal's multiple-registrations param
	// (sofia_reg.c, sofia_reg_handle_register_token). "contact": one row per
	// contact, a REGISTER replacing the row of the user with the same contact (and
	// any other row with that contact), and an un-REGISTER firing no PRESENCE_IN
	// (the user still had rows when it was counted); "" (the emulator's default):
	// rows kept per Call-ID, with the events of the captured default profile.
	// Either way `chat` to user@host sends to every row in turn and the first
	// answer decides.
	MultipleRegistrations string

	// Set by Conf.Options: the static XML the chatplan and xml_locate fall back to,
	// and the conf directory reloadxml and `sofia profile <p> rescan` read again.
	staticChatplan, staticConfig *xnode
	confDir                      string
}

// Switch emulates the SIP side of FreeSWITCH 1.10.12 with mod_sofia
// (profile internal), mod_sms and the chat API, on one UDP socket on
// 127.0.0.1, wired to an ESLServer for its events and API commands.
type Switch struct {
	sofiaMu sync.Mutex // sofia's one SIP thread per profile: see handleMessage
	opts    SwitchOptions
	log     *slog.Logger
	esl     *ESLServer

	pc  net.PacketConn
	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cl  *sipgo.Client

	done   chan struct{}
	base   context.Context // ends when the switch closes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	regs    []*registration
	nonces  map[string]time.Time
	cseq    uint32
	closed  bool
	pending map[sip.ClientTransaction]struct{}

	chatQ []chan *inboundChat
	rr    int

	// live is what reloadxml and rescan change at run time (conf_reload.go).
	liveMu sync.RWMutex
	live   liveXML

	flushes []string     // flush_inbound_reg arguments, for Flushes (under mu)
	chats   atomic.Int64 // chat API calls, for Chats
}

// NewSwitch starts the ESL server, the SIP socket, the chat threads and
// the registration thread.
func NewSwitch(opts SwitchOptions) (*Switch, error) {
	opts.Domain = or(opts.Domain, "127.0.0.1")
	opts.Profile = or(opts.Profile, "internal")
	opts.Context = or(opts.Context, "public")
	if opts.Users == nil {
		opts.Users = map[string]string{"1000": "1234", "1001": "1234", "1002": "1234", "1003": "1234"}
	}
	switch {
	case opts.ChatResultFloor == 0:
		opts.ChatResultFloor = 100 * time.Millisecond
	case opts.ChatResultFloor < 0:
		opts.ChatResultFloor = 0
	}
	if opts.ChatGiveUp <= 0 {
		opts.ChatGiveUp = 19930 * time.Millisecond
	}
	if opts.ChatThreads <= 0 {
		opts.ChatThreads = 2
	}
	if opts.RegCheckInterval <= 0 {
		opts.RegCheckInterval = 30 * time.Second
	}
	if opts.TimerF <= 0 {
		opts.TimerF = sip.Timer_F
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	esl, err := NewESLServer(opts.ESL)
	if err != nil {
		return nil, err
	}
	s := &Switch{
		opts: opts, log: log, esl: esl,
		done:    make(chan struct{}),
		nonces:  map[string]time.Time{},
		cseq:    123278600, // sofia's counter looked like this; any start will do
		pending: map[sip.ClientTransaction]struct{}{},
	}
	s.live = liveXML{context: opts.Context, chatplan: opts.staticChatplan, config: opts.staticConfig,
		modules: slices.Clone(opts.Modules), xmlCurl: opts.XMLCurl}
	if opts.Modules == nil {
		s.live.modules = slices.Clone(capturedModules)
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	if err := s.startSIP(); err != nil {
		s.Close()
		return nil, err
	}
	for i := 0; i < opts.ChatThreads; i++ {
		q := make(chan *inboundChat, 5000) // SWITCH_CHAT_QUEUE size in mod_sms
		s.chatQ = append(s.chatQ, q)
		s.wg.Add(1)
		go s.chatThread(q)
	}
	s.wg.Add(1)
	go s.regThread()
	if s.Loaded("mod_sofia") {
		esl.HandleAPI("sofia", s.sofiaAPI)
		esl.HandleAPI("sofia_contact", s.sofiaContactAPI)
	}
	if s.Loaded("mod_dptools") {
		esl.HandleOrderedAPI("chat", s.chatAPI)
	}
	if s.Loaded("mod_commands") {
		esl.HandleAPI("module_exists", s.moduleExistsAPI)
		esl.HandleAPI("xml_locate", s.xmlLocateAPI)
		esl.HandleAPI("reloadxml", s.reloadXMLAPI)
		esl.HandleAPI("load", s.loadAPI)
		esl.HandleAPI("unload", s.unloadAPI)
		esl.HandleAPI("reload", s.reloadAPI)
	}
	return s, nil
}

// startSIP binds the one UDP socket and serves it (docs/decisions.md §20).
func (s *Switch) startSIP() error {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(fsUserAgent), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.log)))
	if err != nil {
		pc.Close()
		return err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		ua.Close()
		pc.Close()
		return err
	}
	cl, err := sipgo.NewClient(ua, sipgo.WithClientConnectionAddr(pc.LocalAddr().String()),
		sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(s.log))
	if err != nil {
		ua.Close()
		pc.Close()
		return err
	}
	srv.OnRegister(s.handleRegister)
	srv.OnMessage(s.handleMessage)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) { s.respond(req, tx, 200, "OK") })
	s.pc, s.ua, s.srv, s.cl = pc, ua, srv, cl
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.ServeUDP(pc); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("fsemu: SIP socket ended", "err", err)
		}
	}()
	return waitServing(ua, pc.LocalAddr().String())
}

// SIPAddr is the switch's SIP address, 127.0.0.1:port (UDP).
func (s *Switch) SIPAddr() string { return s.pc.LocalAddr().String() }

// ESL is the switch's event socket.
func (s *Switch) ESL() *ESLServer { return s.esl }

// Restart emulates a FreeSWITCH restart as far as clients can see it: a
// new Core-UUID, ESL connections dropped, pending bgapi jobs forgotten (their
// BACKGROUND_JOB never comes). Registrations survive: sofia keeps them in
// its database.
func (s *Switch) Restart() {
	s.esl.Restart("")
}

// Close stops everything and waits for every goroutine it started.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done) // blocking chats give up, chat threads and timers end
	s.cancel()    // xml_curl lookups in progress
	txs := make([]sip.ClientTransaction, 0, len(s.pending))
	for tx := range s.pending {
		txs = append(txs, tx)
	}
	s.mu.Unlock()
	for _, tx := range txs {
		tx.Terminate()
	}
	err := s.esl.Close() // waits for bgapi jobs
	if s.ua != nil {     // nil when NewSwitch failed early
		s.ua.Close()
		s.pc.Close()
	}
	s.wg.Wait()
	return err
}

// respond answers req with sofia's usual headers.
func (s *Switch) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hs {
		res.AppendHeader(h)
	}
	res.AppendHeader(sip.NewHeader("User-Agent", fsUserAgent))
	res.AppendHeader(sip.NewHeader("Allow", fsAllow))
	res.AppendHeader(sip.NewHeader("Supported", fsSupported))
	if err := tx.Respond(res); err != nil {
		s.log.Debug("fsemu: respond", "err", err)
	}
}

// nextCSeq is sofia's per-profile CSeq counter for requests it originates.
func (s *Switch) nextCSeq() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cseq++
	return s.cseq
}

// newEvent creates an event the way switch_event_create does: the standard
// headers, Event-Sequence included, are taken now, so an event fired later
// keeps its earlier sequence number (the recordings show MESSAGE events with
// a lower Event-Sequence than the sofia::error fired before them).
func (s *Switch) newEvent(name, subclass string, ci [3]string, hs ...Header) *Event {
	id := s.esl.identity()
	gen := stdValues(name, id, s.esl.opts.Clock(), ci)
	gen["Event-Sequence"] = strconv.FormatUint(s.esl.NextSequence(), 10)
	ev := &Event{}
	if subclass != "" {
		ev.Headers = append(ev.Headers, Header{"Event-Subclass", subclass})
	}
	for _, n := range stdHeaders {
		ev.Headers = append(ev.Headers, Header{n, gen[n]})
	}
	ev.Headers = append(ev.Headers, hs...)
	return ev
}

// custom creates a CUSTOM event of subclass sub with the captured origin.
func (s *Switch) custom(sub string, hs ...Header) *Event {
	return s.newEvent("CUSTOM", sub, callingInfo["CUSTOM "+sub], hs...)
}

// waitServing waits until sipgo's pool holds the socket ServeUDP was given:
// before that, a client request from the same address makes sipgo bind the
// port again and fail with "address already in use".
func waitServing(ua *sipgo.UserAgent, addr string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("fsemu: SIP socket " + addr + " not served")
		}
		time.Sleep(time.Millisecond)
	}
}
