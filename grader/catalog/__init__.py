"""The catalog: programs, assessments and rubrics kept as files by course teams (content as code)."""
