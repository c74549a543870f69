package routing

import "slices"

func cmpLinks(a, b Link) int {
	switch {
	case a.Neighbor < b.Neighbor:
		return -1
	case a.Neighbor > b.Neighbor:
		return 1
	case a.Cost < b.Cost:
		return -1
	case a.Cost > b.Cost:
		return 1
	}
	return 0
}

// sortLinks sorts links in place by neighbour (then cost).
func sortLinks(links []Link) { slices.SortFunc(links, cmpLinks) }

// sortedLinks returns a sorted copy of links.
func sortedLinks(links []Link) []Link {
	c := slices.Clone(links)
	sortLinks(c)
	return c
}

// linksSorted reports whether links is sorted by neighbour without
// duplicates.
func linksSorted(links []Link) bool {
	for i := 1; i < len(links); i++ {
		if links[i-1].Neighbor >= links[i].Neighbor {
			return false
		}
	}
	return true
}
