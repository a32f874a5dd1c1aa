package store

import (
	"errors"
	"slices"
)

// PlannedSource is a recorded source a repair needs, with the damaged
// objects it provides and the images they belong to.
type PlannedSource struct {
	Source // as recorded; Objects: only the damaged ones it provides
	Images []string
}

// RepairPlan says which recorded sources (Store.Provenance) a repair of
// checked images needs: each damaged object from the first source, in
// the images' records, that lists it. Unknown lists the damaged objects no
// record names (an image imported before provenance was recorded, or from
// elsewhere): those need an explicit source.
type RepairPlan struct {
	Sources []PlannedSource
	Unknown []string
}

// PlanRepair reads the provenance records of the damaged images among
// reports and plans which of their sources a repair must read. An image
// object no record lists is planned from a recorded tree of its image
// (a tree can rebuild the image).
func (s *Store) PlanRepair(reports []FsckImage) (RepairPlan, error) {
	var plan RepairPlan
	index := map[[3]string]int{} // kind, ref, layout -> index in plan.Sources
	planned := map[string]bool{}
	add := func(src Source, image, object string) {
		k := [3]string{src.Kind, src.Ref, src.Layout}
		i, ok := index[k]
		if !ok {
			i = len(plan.Sources)
			index[k] = i
			src.Objects = nil
			plan.Sources = append(plan.Sources, PlannedSource{Source: src})
		}
		ps := &plan.Sources[i]
		ps.Objects = append(ps.Objects, object)
		if !slices.Contains(ps.Images, image) {
			ps.Images = append(ps.Images, image)
		}
		planned[object] = true
	}
	for _, r := range reports {
		damaged := r.Damaged()
		if len(damaged) == 0 {
			continue
		}
		sources, err := s.Provenance(r.Image)
		if err != nil && !errors.Is(err, ErrNoProvenance) {
			return plan, err
		}
		for _, d := range damaged {
			if planned[d] {
				continue
			}
			if src, ok := sourceOf(sources, d, d == r.Image); ok {
				add(src, r.Image, d)
			} else if !slices.Contains(plan.Unknown, d) {
				plan.Unknown = append(plan.Unknown, d)
			}
		}
	}
	// An object unknown to one image's record may be planned by another's.
	plan.Unknown = slices.DeleteFunc(plan.Unknown, func(d string) bool { return planned[d] })
	for i := range plan.Sources {
		slices.Sort(plan.Sources[i].Objects)
	}
	slices.Sort(plan.Unknown)
	return plan, nil
}

// sourceOf finds the first source that lists object d; for an image
// object, failing that, the first tree.
func sourceOf(sources []Source, d string, image bool) (Source, bool) {
	for _, src := range sources {
		if slices.Contains(src.Objects, d) {
			return src, true
		}
	}
	if image {
		for _, src := range sources {
			if src.Kind == SourceTree {
				return src, true
			}
		}
	}
	return Source{}, false
}
