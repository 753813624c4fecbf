"""Render one subject: the standard cohort or the hard preset, as its spec says.

The dispatcher sits above both renderers (``subject`` for the standard cohort, ``hard`` for the
hard preset, which builds on ``subject``), so neither has to import the other lazily.
"""

from __future__ import annotations

from iphbench.synth.hard import synthesize_hard
from iphbench.synth.subject import SubjectSpec, SyntheticScan, synthesize_standard


def synthesize_subject(spec: SubjectSpec) -> SyntheticScan:
    """Render one subject: head phantom, hemorrhage and oedema, clean HU, then the site's scanner.

    The mask is the hemorrhage label on the site's grid: in ``hu_clean`` it is exactly the
    intracranial region at or above ``LESION_HU_RANGE[0]`` HU. With ``spec.preset`` set the
    hard preset renders it (``iphbench.synth.hard``).
    """
    if spec.preset is not None:
        return synthesize_hard(spec)
    return synthesize_standard(spec)
