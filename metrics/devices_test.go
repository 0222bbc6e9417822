package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sipsilo/sipsilo/relay"
)

// The per-device series follow relay's counts of copies delivered and of
// devices holding copies.
func TestDeviceSeries(t *testing.T) {
	f := &fakes{}
	_, reg := newMetrics(t, f.sources())
	f.move(func(f *fakes) { f.relay = relay.Stats{Delivered: 7, DeviceDeliveries: 6, DevicesHolding: 2} })
	h := helps()
	want := "# HELP sipsilo_device_deliveries_total " + h["sipsilo_device_deliveries_total"] + "\n" +
		"# TYPE sipsilo_device_deliveries_total counter\nsipsilo_device_deliveries_total 6\n" +
		"# HELP sipsilo_devices_holding " + h["sipsilo_devices_holding"] + "\n" +
		"# TYPE sipsilo_devices_holding gauge\nsipsilo_devices_holding 2\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sipsilo_device_deliveries_total", "sipsilo_devices_holding"); err != nil {
		t.Fatal(err)
	}
}
