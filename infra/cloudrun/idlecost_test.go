package cloudrun

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/cost"
)

// What a deployment with no job costs in compute, a month, from what
// deploy.sh deploys and pkg/cost's prices. Only the scheduled sweep runs
// then: the service it calls starts for it every 5 minutes. Cloud Run keeps
// an idle instance up to about 15 minutes, so an instance-billed target
// (CPU always allocated) would be billed around the clock; a request-billed
// one only for each sweep: its cold start and the sweep itself.
const (
	idleKeepAlive = 15 * time.Minute // how long Cloud Run may keep an idle instance
	sweepEvery    = 5 * time.Minute  // deploy.sh's schedule, */5 * * * *
	// A sweep billed per request: a cold start of the Go binary and a
	// sweep that lists the active marks, generously.
	sweepBilled = 3 * time.Second
	month       = 30 * 24 * time.Hour
)

// idleCostPerMonth is what the scheduled sweep costs a month when it calls
// target, a service of docs.
func idleCostPerMonth(t *testing.T, s service) float64 {
	t.Helper()
	limits := s.Spec.Template.Spec.Containers[0].Resources.Limits
	cpu, err := strconv.ParseFloat(limits["cpu"], 64)
	if err != nil {
		t.Fatalf("%s: cpu %q", s.Metadata.Name, limits["cpu"])
	}
	gib := float64(memoryMB(t, limits["memory"])) / 1024
	p := cost.DefaultPrices()
	sweeps := float64(month / sweepEvery)
	if s.Spec.Template.Metadata.Annotations["run.googleapis.com/cpu-throttling"] == "false" {
		if idleKeepAlive < sweepEvery {
			t.Fatalf("the test's model: an instance outlives the gap between sweeps")
		}
		return month.Seconds() * (cpu*p.CloudRunInstanceVCPUSecond + gib*p.CloudRunInstanceGiBSecond)
	}
	return sweeps * (sweepBilled.Seconds()*(cpu*p.CloudRunVCPUSecond+gib*p.CloudRunGiBSecond) + p.CloudRunRequest)
}

// The sweep calls a request-billed service, so an idle deployment costs
// cents a month in compute rather than what the orchestrator (billed per
// instance) costs around the clock; docs/CLOUDRUN.md states both figures.
func TestIdleCost(t *testing.T) {
	c := newCloud(t)
	r := c.run(t, "deploy.sh", deployEnv()...)
	mustSucceed(t, "deploy.sh", r)
	docs := replaced(t, c, r.calls)
	target := ""
	for _, call := range r.calls {
		if call.is("scheduler", "jobs", "create", "http") {
			uri, _ := call.flag("uri")
			for name := range docs {
				if strings.HasPrefix(uri, serviceURL(name)+"/") {
					target = name
				}
			}
		}
	}
	s, ok := docs[target]
	if !ok {
		t.Fatalf("the sweep's scheduler job calls no deployed service (%q)", target)
	}
	idle := idleCostPerMonth(t, s)
	before := idleCostPerMonth(t, docs["helios-orchestrator"]) // the sweep's target before
	t.Logf("idle compute a month: $%.2f (the sweep on %s); $%.2f if it called the orchestrator", idle, target, before)
	if idle > 1 {
		t.Errorf("an idle deployment costs $%.2f a month in compute: the sweep's target %s keeps instances billed", idle, target)
	}
	readme, err := os.ReadFile("../../docs/CLOUDRUN.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, figure := range []string{fmt.Sprintf("$%.2f a month", idle), fmt.Sprintf("$%.0f a month", before)} {
		if !strings.Contains(string(readme), figure) {
			t.Errorf("docs/CLOUDRUN.md's costs do not state %q", figure)
		}
	}
}
