"""The kernel's side of grading: what may run in a student's kernel.

``checks``: the self-checks of the exercises' notebooks, run at home in the
student's kernel (``from lstmlib.selfcheck import checks``), with the same
messages as the grader's. ``_harness``: what a graded kernel runs when the
grader asks it to call a function; ``_codec``: the plain-data format of the
answers. A graded kernel holds these two and stubs of ``checks``, in the
assignment's edition of lstmlib (:mod:`lstmlib.grading.kernel_edition`),
which holds no reference a graded function could delegate to.

When a notebook is graded, its test cells do not run in the kernel: the
grader (:mod:`lstmlib.grading`, another process) draws the inputs, asks the
kernel to call the student's functions by name and compares what comes back
with its own reference. Nothing in this package knows an expected value of
a graded case, and :mod:`lstmlib.grading` never imports this package.
"""
