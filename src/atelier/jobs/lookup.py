"""Find a job by its own id or by a ComfyUI prompt_id (the id of any of its attempts).

People copy ids from ComfyUI's own UI and logs, which show prompt ids: those lead to the
job too. The owner rule is the jobs service's, so nobody reaches another owner's job.
"""

from __future__ import annotations

from atelier.db.operations import OperationsRepository
from atelier.errors import JobNotFound
from atelier.jobs.service import JobsService
from atelier.jobs.views import JobView


async def get_job(jobs: JobsService, job_id: str, *, owner: str | None, base_url: str) -> JobView:
    try:
        return await jobs.get(job_id, owner=owner, base_url=base_url)
    except JobNotFound:
        async with jobs.ledger.database.transaction() as session:
            found = await OperationsRepository(session).job_of_attempt(job_id)
        if found is None:
            raise
        return await jobs.get(found, owner=owner, base_url=base_url)
