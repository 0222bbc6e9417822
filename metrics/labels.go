package metrics

import (
	"github.com/sipsilo/sipsilo/handlers"
	"github.com/sipsilo/sipsilo/presence"
	"github.com/sipsilo/sipsilo/relay"
)

// intakeAnswers are the (answer, why) label pairs of sipsilo_intake_seconds.
var intakeAnswers = func() []intakeKey {
	ks := []intakeKey{
		{handlers.AnswerFinal, handlers.WhyStored},
		{handlers.AnswerLost, handlers.WhyReleased},
		{handlers.AnswerProbe, handlers.WhyCheckFS},
	}
	for _, why := range []string{
		handlers.WhyOtherSection, handlers.WhyBadRequest, handlers.WhyBadField, handlers.WhyFormTooLarge,
		handlers.WhyNotLocal, handlers.WhyNotSIP, handlers.WhySkippedType, handlers.WhyTooLarge,
		handlers.WhyOverQuota, handlers.WhyFromService, handlers.WhyNotMessage, handlers.WhyNoBodySource, handlers.WhyStoreError, handlers.WhyDeadline, handlers.WhyGone,
		handlers.WhyNotExact, handlers.WhyOutOfReach,
	} {
		ks = append(ks, intakeKey{handlers.AnswerNotFound, why})
	}
	for _, a := range []string{handlers.AnswerFinal, handlers.AnswerNotFound, handlers.AnswerLost, handlers.AnswerProbe, other} {
		ks = append(ks, intakeKey{a, other})
	}
	return ks
}()

// answerOf keeps an answer label in its table.
func answerOf(answer string) string {
	switch answer {
	case handlers.AnswerFinal, handlers.AnswerNotFound, handlers.AnswerLost, handlers.AnswerProbe:
		return answer
	}
	return other
}

var (
	deliveryPaths = []string{relay.PathESL, relay.PathDirect}
	detectSources = []string{presence.DetectPinger, presence.DetectDelivery, presence.DetectFreeSWITCH, presence.DetectAsterisk}
)
