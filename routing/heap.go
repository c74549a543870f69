package routing

// The solver's priority queue: a binary min-heap of node indices keyed by
// dist, with positions tracked in s.pos for decrease-key.

func (s *solver) less(a, b int32, dist []uint64) bool {
	if dist[a] != dist[b] {
		return dist[a] < dist[b]
	}
	return a < b
}

func (s *solver) push(v int32, dist []uint64) {
	s.heap = append(s.heap, v)
	i := len(s.heap) - 1
	s.pos[v] = int32(i)
	s.up(i, dist)
}

func (s *solver) pop(dist []uint64) int32 {
	h := s.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	s.pos[h[0]] = 0
	s.heap = h[:last]
	if last > 0 {
		s.down(0, dist)
	}
	s.pos[top] = -2
	return top
}

func (s *solver) up(i int, dist []uint64) {
	h := s.heap
	v := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(v, h[p], dist) {
			break
		}
		h[i] = h[p]
		s.pos[h[i]] = int32(i)
		i = p
	}
	h[i] = v
	s.pos[v] = int32(i)
}

func (s *solver) down(i int, dist []uint64) {
	h := s.heap
	n := len(h)
	v := h[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && s.less(h[c+1], h[c], dist) {
			c++
		}
		if !s.less(h[c], v, dist) {
			break
		}
		h[i] = h[c]
		s.pos[h[i]] = int32(i)
		i = c
	}
	h[i] = v
	s.pos[v] = int32(i)
}
