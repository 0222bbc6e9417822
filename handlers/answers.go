package handlers

// Chatplan answers and why each was given: the values ChatplanConfig.Observe
// receives, and the labels of the intake metrics. They are fixed words, never
// anything from the request.
const (
	// AnswerFinal: sipsilo stored the message and FreeSWITCH got the chatplan
	// that hands it over.
	AnswerFinal = "final"
	// AnswerNotFound: FreeSWITCH delivers the message as stock.
	AnswerNotFound = "not_found"
	// AnswerLost: the message was stored but the chatplan did not reach
	// FreeSWITCH, so it was released (FreeSWITCH delivers it).
	AnswerLost = "lost"
	// AnswerProbe: a `sipsilo check-fs` lookup got its nonce back; no message.
	AnswerProbe = "probe"
)

// Why a chatplan answer was given.
const (
	WhyStored       = "stored"        // AnswerFinal
	WhyOtherSection = "other_section" // an xml_curl section other than chatplan
	WhyBadRequest   = "bad_request"   // malformed form or query, not a MESSAGE lookup
	WhyBadField     = "bad_field"     // a field too long or with control characters to store
	WhyFormTooLarge = "form_too_large"
	WhyNotLocal     = "not_local"      // recipient domain not in --domains
	WhyNotSIP       = "not_sip"        // dest_proto other than sip
	WhySkippedType  = "skipped_type"   // content type in --skip-types
	WhyTooLarge     = "too_large"      // body over --max-body
	WhyOverQuota    = "over_quota"     // the recipient's queue is full (--quota)
	WhyFromService  = "from_service"   // sent by --notice-from: never stored, so notices cannot loop
	WhyNotMessage   = "not_message"    // a chatplan lookup that is no MESSAGE (xml_locate) and no probe
	WhyCheckFS      = "check_fs"       // AnswerProbe
	WhyNoBodySource = "no_body_source" // no body query parameter and no live event socket to bring the body
	WhyStoreError   = "store_error"    // the store refused the write
	WhyDeadline     = "deadline"       // not committed within --answer-timeout
	WhyGone         = "client_gone"    // FreeSWITCH hung up before it was stored
	WhyReleased     = "released"       // AnswerLost
)
