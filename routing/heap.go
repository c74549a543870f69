package routing

// The solver's priority queue: a 4-ary min-heap of (distance, node)
// items, keys stored inline for locality, positions tracked in s.pos for
// decrease-key.

type heapItem struct {
	d uint64
	v int32
}

// push queues v at distance d.
func (s *solver) push(v int32, d uint64) {
	s.heap = append(s.heap, heapItem{d, v})
	s.up(len(s.heap)-1, heapItem{d, v})
}

// decrease lowers the key of the queued node v to d.
func (s *solver) decrease(v int32, d uint64) {
	s.up(int(s.pos[v]), heapItem{d, v})
}

// pop removes and returns the nearest node, marking it done.
func (s *solver) pop() int32 {
	h := s.heap
	top := h[0].v
	last := len(h) - 1
	it := h[last]
	s.heap = h[:last]
	if last > 0 {
		s.down(it)
	}
	s.pos[top] = -2
	return top
}

// up places it at or above position i.
func (s *solver) up(i int, it heapItem) {
	h := s.heap
	for i > 0 {
		p := (i - 1) / 4
		if h[p].d <= it.d {
			break
		}
		h[i] = h[p]
		s.pos[h[i].v] = int32(i)
		i = p
	}
	h[i] = it
	s.pos[it.v] = int32(i)
}

// down places it, taken from the end, starting at the root.
func (s *solver) down(it heapItem) {
	h := s.heap
	n := len(h)
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if h[k].d < h[m].d {
				m = k
			}
		}
		if h[m].d >= it.d {
			break
		}
		h[i] = h[m]
		s.pos[h[i].v] = int32(i)
		i = m
	}
	h[i] = it
	s.pos[it.v] = int32(i)
}
