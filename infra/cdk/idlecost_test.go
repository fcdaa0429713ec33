package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// AWS list prices (us-east-1, checked 2026-12) for what the stack keeps
// while no job runs.
const (
	alarmMetricMonth  = 0.10         // a standard-resolution alarm, per metric it reads
	dashboardMonth    = 3.00         // a dashboard beyond the account's first three
	lambdaARMGBSecond = 0.0000133334 // arm64 duration
	lambdaRequest     = 0.20 / 1e6   // per invocation
	sweepsPerMonth    = 30 * 24 * 12 // rate(5 minutes)
	sweepSeconds      = 0.5          // a sweep, billed (a cold start is not billed for provided.al2023 beyond its init)
)

// What the stack costs a month with no job: its alarms and dashboard, and
// the sweep invoking the orchestrator every 5 minutes. docs/AWS.md states
// the figure and what it is made of.
func TestIdleCost(t *testing.T) {
	_, doc := synth(t, nil)
	alarms, metrics := 0, 0
	for _, a := range resources(doc, "AWS::CloudWatch::Alarm") {
		alarms++
		if m, ok := a["Metrics"].([]any); ok {
			for _, q := range m {
				if _, ok := q.(map[string]any)["MetricStat"]; ok {
					metrics++ // a metric-math alarm is billed per metric it reads
				}
			}
		} else {
			metrics++
		}
	}
	dashboards := len(resources(doc, "AWS::CloudWatch::Dashboard"))
	schedules := resources(doc, "AWS::Scheduler::Schedule")
	if len(schedules) != 1 {
		t.Fatalf("%d schedules, want the sweep's", len(schedules))
	}
	for _, s := range schedules {
		if s["ScheduleExpression"] != "rate(5 minutes)" {
			t.Fatalf("the sweep runs %v; the figure assumes every 5 minutes", s["ScheduleExpression"])
		}
	}
	orchestratorGB := float64(DefaultSettings().OrchestratorMemory) / 1024
	sweeps := sweepsPerMonth * (sweepSeconds*orchestratorGB*lambdaARMGBSecond + lambdaRequest)
	watch := float64(metrics)*alarmMetricMonth + float64(dashboards)*dashboardMonth
	t.Logf("idle a month: $%.2f (%d alarms reading %d metrics, %d dashboard) + $%.2f (sweeps)", watch, alarms, metrics, dashboards, sweeps)
	readme, err := os.ReadFile("../../docs/AWS.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("%d alarms reading %d metrics", alarms, metrics),
		fmt.Sprintf("$%.2f a month", watch),
		fmt.Sprintf("$%.2f a month for the sweep", sweeps),
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("docs/AWS.md's costs do not say %q", want)
		}
	}
}
