package dt

import (
	"errors"
	"sync"
	"testing"
)

func mustSched(t *testing.T, cfg SchedConfig) *Scheduler {
	t.Helper()
	s, err := NewScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchedulerPriorityOrder(t *testing.T) {
	s := mustSched(t, SchedConfig{})
	for _, c := range []Class{ClassBulk, ClassBestEffort, ClassLowLatency, ClassManagement} {
		s.Enqueue([]byte{byte(c)}, c)
	}
	for _, want := range []Class{ClassManagement, ClassLowLatency, ClassBestEffort, ClassBulk} {
		p, c, ok := s.Dequeue()
		if !ok || c != want || p[0] != byte(want) {
			t.Fatalf("dequeued %v (%v, ok %v), want %v", c, p, ok, want)
		}
	}
	if _, _, ok := s.Dequeue(); ok {
		t.Fatal("dequeued from an empty scheduler")
	}
}

func TestSchedulerFIFOWithinClassAndGrowth(t *testing.T) {
	s := mustSched(t, SchedConfig{})
	for i := 0; i < 100; i++ {
		s.Enqueue([]byte{byte(i)}, ClassBulk)
		if i%3 == 0 { // interleave pops so the ring wraps and grows
			if p, _, _ := s.Dequeue(); p[0] != byte(i/3) {
				t.Fatalf("pop %d got %d", i/3, p[0])
			}
		}
	}
	next := 34
	for {
		p, _, ok := s.Dequeue()
		if !ok {
			break
		}
		if int(p[0]) != next {
			t.Fatalf("got %d, want %d", p[0], next)
		}
		next++
	}
	if next != 100 {
		t.Fatalf("ended at %d", next)
	}
}

func TestSchedulerGuaranteesLowerClasses(t *testing.T) {
	s := mustSched(t, SchedConfig{Limit: [NumClasses]int{64, 2000, 2000, 2000}})
	for i := 0; i < 2000; i++ {
		s.Enqueue([]byte{1}, ClassLowLatency)
		s.Enqueue([]byte{2}, ClassBestEffort)
		s.Enqueue([]byte{3}, ClassBulk)
	}
	var got [NumClasses]int
	const n = 900
	for i := 0; i < n; i++ {
		_, c, _ := s.Dequeue()
		got[c]++
	}
	t.Logf("a saturated egress served %v of %d", got, n)
	if got[ClassLowLatency] <= got[ClassBestEffort] || got[ClassBestEffort] <= got[ClassBulk] {
		t.Errorf("priority not kept: %v", got)
	}
	// Best effort waits at most 4 higher packets, bulk 8.
	if got[ClassBestEffort] < n/6 || got[ClassBulk] < n/12 {
		t.Errorf("lower classes starved: %v", got)
	}
}

func TestSchedulerManagementFirstEvenWhenOwed(t *testing.T) {
	s := mustSched(t, SchedConfig{})
	for i := 0; i < 20; i++ {
		s.Enqueue([]byte{1}, ClassLowLatency)
		s.Enqueue([]byte{3}, ClassBulk)
	}
	for i := 0; i < 10; i++ {
		s.Dequeue()
	}
	s.Enqueue([]byte{0}, ClassManagement)
	if _, c, _ := s.Dequeue(); c != ClassManagement {
		t.Fatalf("got %v ahead of management", c)
	}
}

func TestSchedulerBoundedAndCounted(t *testing.T) {
	s := mustSched(t, SchedConfig{Limit: [NumClasses]int{2, 3, 3, 3}})
	for i := 0; i < 10; i++ {
		s.Enqueue([]byte{0}, ClassBulk)
		s.Enqueue([]byte{0}, ClassManagement)
		s.Enqueue([]byte{0}, Class(200)) // unknown: best effort
	}
	st := s.Stats()
	if s.Len() != 8 || st.Dropped[ClassBulk] != 7 || st.Dropped[ClassManagement] != 8 || st.Dropped[ClassBestEffort] != 7 {
		t.Fatalf("len %d, stats %+v", s.Len(), st)
	}
}

func TestSchedulerMarksInTheHeader(t *testing.T) {
	l := DefaultLayout()
	var marks []uint8
	s := mustSched(t, SchedConfig{Limit: [NumClasses]int{16, 16, 16, 16}, MarkAbove: [NumClasses]int{1, 4, 4, 4},
		Mark: func(p []byte, level uint8) {
			got, err := l.RaiseECN(p, level)
			if err != nil {
				t.Errorf("RaiseECN: %v", err)
			}
			marks = append(marks, got)
		}})
	pkt := func() []byte {
		b := make([]byte, l.Len()+10)
		if _, err := l.Encode(b, &PCI{Dst: 7, QoS: 2, TTL: 9, EID: 5}); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i := 0; i < 16; i++ {
		s.Enqueue(pkt(), ClassBulk)
		s.Enqueue(pkt(), ClassManagement)
	}
	if len(marks) != 12 {
		t.Fatalf("%d marks, want the 12 packets queued behind 4 or more", len(marks))
	}
	for i := 1; i < len(marks); i++ {
		if marks[i] < marks[i-1] || marks[i] == 0 {
			t.Fatalf("levels %v do not grow with the queue", marks)
		}
	}
	var marked int
	for {
		p, c, ok := s.Dequeue()
		if !ok {
			break
		}
		pci, _, err := l.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		if c == ClassManagement && pci.ECN != 0 {
			t.Fatal("management packet marked")
		}
		if pci.ECN != 0 {
			marked++
		}
	}
	if st := s.Stats(); marked != 12 || st.Marked[ClassBulk] != 12 {
		t.Fatalf("%d packets carry a mark, stats %+v", marked, st)
	}
}

func TestSchedulerConfigRejected(t *testing.T) {
	for _, c := range []SchedConfig{
		{Limit: [NumClasses]int{-1}},
		{Limit: [NumClasses]int{1 << 20}},
		{MarkAbove: [NumClasses]int{0, -3}},
		{Guarantee: [NumClasses]int{0, 0, -1}},
	} {
		if _, err := NewScheduler(c); !errors.Is(err, ErrSchedConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestSchedulerConcurrent(t *testing.T) {
	s := mustSched(t, SchedConfig{})
	var wg sync.WaitGroup
	for k := 0; k < 4; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Enqueue([]byte{byte(k)}, Class(k))
			}
		}()
	}
	got := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	buf := make([][]byte, 16)
	for {
		n := s.DequeueBatch(buf)
		got += n
		select {
		case <-done:
			if n == 0 && s.Len() == 0 {
				st := s.Stats()
				var q, d uint64
				for c := range st.Queued {
					q += st.Queued[c]
					d += st.Dropped[c]
				}
				if uint64(got) != q || q+d != 4000 {
					t.Fatalf("dequeued %d, queued %d, dropped %d", got, q, d)
				}
				return
			}
		default:
		}
	}
}
