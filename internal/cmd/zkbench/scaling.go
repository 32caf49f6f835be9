package main

import (
	_ "embed"
	"fmt"
	"math"
	"strings"
	"text/template"
	"time"
)

// The scenario SCALING.md works out. The issue fixes hosts and services;
// five instances per service is the throughput data set's shape.
const (
	scenarioHosts     = 10_000
	scenarioServices  = 1_000
	scenarioInstances = 5
	// scenarioObservers is the observer count the observer example uses.
	scenarioObservers = 20
	// scenarioVoters is the voting ensemble the examples assume.
	scenarioVoters = 5
)

// setWatchesLimit is the most the client library puts in one setWatches
// request (go-zookeeper/zk v1.0.4, as the Java client does).
const setWatchesLimit = 128 << 10

//go:embed scaling.md.tmpl
var scalingTemplate string

// scaling is the arithmetic of SCALING.md over one run's measurements.
type scaling struct {
	hosts, services, instances int
	observers, voters          int
	cost                       *costMeasurements
	churn                      *churnMeasurements // nil when target 4 did not run
	cold                       *coldMeasurements  // nil when target 3 did not run
}

func newScaling(c *costMeasurements, ch *churnMeasurements, cold *coldMeasurements) *scaling {
	return &scaling{
		hosts: scenarioHosts, services: scenarioServices, instances: scenarioInstances,
		observers: scenarioObservers, voters: scenarioVoters,
		cost: c, churn: ch, cold: cold,
	}
}

// watchesPerHost is what one zkdns holds: a child watch per service, a
// data watch per instance, and one child watch on the discover root.
func watchesPerHost(services, instances int) int { return services + services*instances + 1 }

// recursiveRequests is what one host would ask per change with a
// persistent recursive watch: the event names the znode, so a create or
// a data change needs one plain read of it and a delete none.
func recursiveRequests(k churnKind) int {
	if k == churnDelete {
		return 0
	}
	return 1
}

// scalingRow is one kind of change worked out for the whole fleet.
type scalingRow struct {
	Kind                    string
	Requests, Notifications string // per host, measured
	Bytes                   string // per host, measured
	FleetRequests           string
	FleetNotifications      string
	FleetBytes              string
	PerObserverRequests     string
	PerObserverNotes        string
	RecursiveRequests       string
	RecursiveFleetRequests  string
}

type scalingData struct {
	Header                                        string
	Hosts, Services, Instances, Observers, Voters string
	Members                                       string

	MeasuredServices, MeasuredInstances string
	MeasuredWatches, ExpectedMeasured   string
	MeasuredChild, MeasuredData         string
	ServerData                          string
	WatchesPerHost, FleetWatches        string
	FleetPersistent                     string
	WatchesPerMember, WatchesPerObs     string
	RecursiveFleetWatches               string
	WatchRatio                          string

	Rows []scalingRow

	ReconnectRequests, ReconnectWire, ReconnectBytes string
	ReconnectBytesPerPath, ReconnectBytesAtScale     string
	ReconnectAtScale, ReconnectAtScaleRequests       string
	ResyncAtScale                                    string
	MemberRestart, MemberRestartBytes                string

	HaveFanout                                    bool
	FanoutWatchers, FanoutAlone, FanoutWith       string
	CPUPerWatcher, FleetCPUPerChange, ObserverCPU string
	MaxChangeRate                                 string

	HaveChurn                       bool
	ChurnCPU, ChurnRequests         string
	HaveReader                      bool
	ReaderRate, ReadsPerChangeFleet string
	ReaderSeconds                   string
}

func (s *scaling) data(h header) scalingData {
	c := s.cost
	members := s.voters + s.observers
	perHost := watchesPerHost(s.services, s.instances)
	d := scalingData{
		Header: h.markdown(),
		Hosts:  fmtCount(s.hosts), Services: fmtCount(s.services), Instances: fmtCount(s.instances),
		Observers: fmtCount(s.observers), Voters: fmtCount(s.voters), Members: fmtCount(members),

		MeasuredServices: fmtCount(c.services), MeasuredInstances: fmtCount(c.services * c.instances),
		MeasuredWatches: fmtCount(c.childWatches + c.dataWatches), ExpectedMeasured: fmtCount(watchesPerHost(c.services, c.instances)),
		MeasuredChild: fmtCount(c.childWatches), MeasuredData: fmtCount(c.dataWatches), ServerData: fmtCount(c.serverDataWatches),
		WatchesPerHost: fmtCount(perHost), FleetWatches: fmtCount(int64(perHost) * int64(s.hosts)),
		FleetPersistent:       fmtCount(int64(s.services) * int64(s.hosts)),
		WatchesPerMember:      fmtCount(int64(perHost) * int64(s.hosts) / int64(s.voters)),
		WatchesPerObs:         fmtCount(int64(perHost) * int64(s.hosts) / int64(s.observers)),
		RecursiveFleetWatches: fmtCount(s.hosts),
		WatchRatio:            fmtCount(perHost),
	}
	for _, k := range []churnKind{churnCreate, churnDelete, churnSetData} {
		cc := c.byKind[k]
		req := cc.metricTotal()
		notes := cc.wirePer(cc.wire.notifications)
		bytes := float64(cc.wire.requestBytes+cc.wire.replyBytes+cc.wire.notificationBytes) / float64(max(cc.trials, 1))
		hosts := float64(s.hosts)
		perObs := hosts / float64(s.observers)
		d.Rows = append(d.Rows, scalingRow{
			Kind:     k.String(),
			Requests: fmtPer(req), Notifications: fmtPer(notes), Bytes: fmtBytes(int64(bytes)),
			FleetRequests:          fmtCount(int64(req * hosts)),
			FleetNotifications:     fmtCount(int64(notes * hosts)),
			FleetBytes:             fmtBytes(int64(bytes * hosts)),
			PerObserverRequests:    fmtCount(int64(req * perObs)),
			PerObserverNotes:       fmtCount(int64(notes * perObs)),
			RecursiveRequests:      fmt.Sprint(recursiveRequests(k)),
			RecursiveFleetRequests: fmtCount(recursiveRequests(k) * s.hosts),
		})
	}

	// A reconnect within the session: the client re-sends every watched
	// path in setWatches requests of at most setWatchesLimit bytes; zkdns
	// sets its persistent watches again, one per service, and reads only
	// what changed meanwhile (nothing, in the bench).
	r := c.reconnect
	trials := float64(max(r.trials, 1))
	measuredPaths := float64(watchesPerHost(c.services, c.instances))
	bytesPerPath := float64(r.wire.setWatchesBytes) / trials / measuredPaths
	paths := float64(perHost)
	bytesAtScale := bytesPerPath * paths
	ownPerService := r.metricTotal() / float64(max(c.services, 1))
	atScale := math.Ceil(bytesAtScale/setWatchesLimit) + ownPerService*float64(s.services)
	d.ReconnectRequests = fmtPer(r.metricTotal())
	d.ReconnectWire = r.wireRequests()
	d.ReconnectBytes = fmtBytes(int64(float64(r.wire.requestBytes) / trials))
	d.ReconnectBytesPerPath = fmt.Sprintf("%.0f B", bytesPerPath)
	d.ReconnectBytesAtScale = fmtBytes(int64(bytesAtScale))
	d.ReconnectAtScale = fmtCount(int64(atScale))
	d.ReconnectAtScaleRequests = plural(int(atScale), "request")
	d.ResyncAtScale = fmtCount(perHost)
	d.MemberRestart = fmtCount(int64(atScale * float64(s.hosts) / float64(s.observers)))
	d.MemberRestartBytes = fmtBytes(int64(bytesAtScale * float64(s.hosts) / float64(s.observers)))

	if f := c.fanout; f != nil && f.perNotification() > 0 {
		d.HaveFanout = true
		d.FanoutWatchers = fmtCount(f.watchers)
		d.FanoutAlone = fmtDuration(f.cpuAlone)
		d.FanoutWith = fmtDuration(f.cpuWithWatchers)
		d.CPUPerWatcher = fmtDuration(f.perNotification())
		fleetCPU := f.perNotification() * time.Duration(s.hosts)
		d.FleetCPUPerChange = fmtDuration(fleetCPU)
		d.ObserverCPU = fmtDuration(fleetCPU / time.Duration(s.observers))
		// Each observer spends fleetCPU/observers per change; with one
		// core's worth of CPU for it, it keeps up with this many.
		d.MaxChangeRate = fmtRate(float64(time.Second) / float64(fleetCPU/time.Duration(s.observers)))
	}
	if ch := s.churn; ch != nil && ch.changes > 0 {
		d.HaveChurn = true
		d.ChurnCPU = fmtDuration(ch.zkCPU / time.Duration(ch.changes))
		var total float64
		for _, v := range ch.requests {
			total += v
		}
		d.ChurnRequests = fmtPer(total / float64(ch.changes))
	}
	if cold := s.cold; cold != nil && cold.reader.took > 0 {
		d.HaveReader = true
		d.ReaderRate = fmtRate(cold.readRate())
		d.ReaderSeconds = fmtDuration(time.Duration(float64(s.hosts) * c.byKind[churnCreate].metricTotal() / cold.readRate() * float64(time.Second)))
	}
	return d
}

// markdown renders SCALING.md.
func (s *scaling) markdown(h header) (string, error) {
	t, err := template.New("scaling").Parse(scalingTemplate)
	if err != nil {
		return "", fmt.Errorf("zkbench: scaling template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, s.data(h)); err != nil {
		return "", fmt.Errorf("zkbench: scaling template: %w", err)
	}
	return b.String(), nil
}
