"""Break-fix drills: a class of trainees, each with a broken lab, a check, hints, a board."""
