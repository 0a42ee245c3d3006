"""Intake of learner submissions: turning an untrusted git URL or uploaded archive into a plain work tree.

`grader.intake.git` owns git URLs (validation, ref resolution, a shallow fetch of one pinned commit with a
hardened git); `grader.intake.archives` owns uploaded archives (.zip, .tar, .tar.gz, streamed with hard caps);
`grader.intake.tree` owns the checks every finished tree passes (file count, bytes, links, `.git`).
Both hand back a directory that holds only learner files: no `.git`, no links, no special files. Nothing
here knows about Flask or Celery; every failure a learner can cause is a `grader.errors.GraderError`.
"""
