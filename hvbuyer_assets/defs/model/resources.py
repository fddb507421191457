"""The MLflow side of the model domain: the registry resource and dagster-mlflow's tracking resource."""

from __future__ import annotations

import sys
from typing import Any

import dagster as dg
import mlflow
from dagster_mlflow.resources import CONFIG_SCHEMA as MLFLOW_CONFIG_SCHEMA
from dagster_mlflow.resources import MlFlow
from mlflow import MlflowClient

from hvbuyer_assets import registry
from hvbuyer_assets.settings import Settings

# Dagster's own names for a run of assets outside a named job (``dagster asset materialize``, ``materialize()``).
_INTERNAL_JOB_PREFIX = "__"


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow model registry (``MLFLOW_TRACKING_URI``): resolve, load and promote versions of ``hvbuyer``;
    ``ui_url`` (``HVBUYER_MLFLOW_UI_URL``) is where its runs are linked to from the Dagster UI."""

    tracking_uri: str
    ui_url: str = "http://127.0.0.1:5000"

    def client(self) -> MlflowClient:
        """An MLflow client bound to this registry."""
        return registry.client(self.tracking_uri)

    def load(self, version: str) -> Any:
        """Load one registered version as a fitted sklearn pipeline."""
        return registry.load_version(self.tracking_uri, version)

    def run_url(self, run_id: str) -> str:
        """The MLflow UI page of one run."""
        experiment_id = self.client().get_run(run_id).info.experiment_id
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{registry.WORKFLOW_QUERY}"

    def version_url(self, version: str) -> str:
        """The MLflow UI page of one version of ``hvbuyer``."""
        return f"{self.ui_url.rstrip('/')}/#/models/{registry.MODEL_NAME}/versions/{version}"


def run_name(job_name: str, dagster_run_id: str) -> str:
    """The MLflow run's name: the Dagster job and the first block of the Dagster run id (``full_build-1a2b3c4d``);
    a run outside a named job (Dagster's internal ``__ASSET_JOB``) is called ``assets-...``."""
    job = "assets" if job_name.startswith(_INTERNAL_JOB_PREFIX) else job_name
    return f"{job}-{dagster_run_id.split('-')[0]}"


class _NamedMlFlow(MlFlow):
    """dagster-mlflow's run, named after the Dagster job and run and tagged with the job's name."""

    def _set_active_run(self, run_id: str | None = None) -> None:
        self.dagster_job = self.run_name  # dagster-mlflow names the run after the job
        self.run_name = run_name(self.dagster_job, self.dagster_run_id)
        super()._set_active_run(run_id=run_id)

    def _set_all_tags(self) -> None:
        super()._set_all_tags()
        mlflow.set_tag("dagster_job", self.dagster_job)


class TrackedRun:
    """The MLflow run of a Dagster run, opened on first use by the step that logs (``registered_model``).

    dagster-mlflow opens its run when the resource is initialised, i.e. at the start of an in-process run: a run
    that reuses a registered version, or fails before training, would leave an empty MLflow run behind.
    ``start()`` opens (or, in another step process, resumes: dagster-mlflow finds it by the ``dagster_run_id``
    tag) the run and makes it the active one.
    """

    def __init__(self, init_context: dg.InitResourceContext) -> None:
        self._init_context = init_context

    def start(self) -> str:
        """Open or resume this Dagster run's MLflow run; return its id."""
        active = mlflow.active_run()
        if active is not None:
            tags = mlflow.get_run(active.info.run_id).data.tags  # the active run object's tags are as at its start
            if tags.get("dagster_run_id") == self._init_context.run_id:
                return active.info.run_id
            mlflow.end_run()  # left open in this process by an earlier run: never log into it
        _NamedMlFlow(self._init_context)
        return mlflow.active_run().info.run_id


def mlflow_tracking_resource(settings: Settings) -> dg.ResourceDefinition:
    """dagster-mlflow's ``mlflow_tracking`` (one MLflow run per Dagster run), configured for hvbuyer and opened
    only when a step logs (``TrackedRun``).

    It first makes sure the experiment exists with its artifacts under ``HVBUYER_DATA_DIR/mlartifacts``.
    """

    def _tracking(init_context: dg.InitResourceContext) -> TrackedRun:
        try:
            registry.ensure_experiment(settings.mlflow_tracking_uri, f"{settings.data_dir}/mlartifacts")
        except registry.TrackingServerError as exc:
            # Dagster's own wrapper would say only "Error executing resource_fn on ResourceDefinition mlflow", and
            # on Celery that message is all the run failure keeps (the worker's exception crosses the result
            # backend as its type and arguments, without its cause): say which server, in the message itself.
            raise dg.DagsterResourceFunctionError(
                f"resource mlflow: {exc}", user_exception=exc, original_exc_info=sys.exc_info()
            ) from exc
        return TrackedRun(init_context)

    definition = dg.ResourceDefinition(resource_fn=_tracking, config_schema=MLFLOW_CONFIG_SCHEMA)
    return definition.configured(
        {"experiment_name": registry.EXPERIMENT_NAME, "mlflow_tracking_uri": settings.mlflow_tracking_uri}
    )
