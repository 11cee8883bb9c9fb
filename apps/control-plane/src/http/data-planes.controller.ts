import { Body, Controller, Delete, Get, Inject, Param, Post } from '@nestjs/common';
import { z } from 'zod';
import type { DataPlaneRecord } from '../tenancy/data-plane.repository.js';
import type { Project } from '../tenancy/tenant.repository.js';
import { DataPlaneService } from '../tenancy/data-plane.service.js';
import { AuditService } from '../audit/audit.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { nameSchema } from './schemas.js';
import { DataPlaneAnswer, DataPlaneCreated, DataPlaneList, DataPlaneWorkers } from './responses.js';
import type { DataPlane as DataPlaneSchema } from './responses.js';

const CreateDataPlaneBody = z.strictObject({ name: nameSchema });

export function presentDataPlane(record: DataPlaneRecord): z.input<typeof DataPlaneSchema> {
  return {
    id: record.id,
    projectId: record.projectId,
    name: record.name,
    createdAt: record.createdAt.toISOString(),
    revokedAt: record.revokedAt === null ? null : record.revokedAt.toISOString(),
  };
}

/** Data planes of a project: each gets a credential its workers and gateway dial in with. */
@Controller('v1/projects/:project/data-planes')
export class DataPlanesController {
  constructor(@Inject(DataPlaneService) private readonly dataPlanes: DataPlaneService) {}

  @Post()
  @Api({
    response: DataPlaneCreated,
    permission: 'data-planes.manage',
    tag: 'data-planes',
    summary: 'Register a data plane; its credential is in this answer only',
    body: CreateDataPlaneBody,
    status: 201,
  })
  async create(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Body() body: z.infer<typeof CreateDataPlaneBody>,
  ): Promise<{ dataPlane: unknown; credential: string }> {
    const created = await this.dataPlanes.create(project.id, { name: body.name }, AuditService.actorOf(caller.principal));
    return { dataPlane: presentDataPlane(await this.dataPlanes.get(project.id, created.id)), credential: created.token };
  }

  @Post(':id/rotate')
  @Api({
    response: DataPlaneCreated,
    permission: 'data-planes.manage',
    tag: 'data-planes',
    summary: "Rotate a data plane's credential: the new one is in this answer only; the old one stops at once",
    description:
      'Every replica ends the worker streams and long polls still using the old credential (UNAUTHENTICATED) and refuses their ' +
      'requests from the rotation on; new calls with it are refused. Configure the new credential on the workers and the gateway.',
  })
  async rotate(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Param('id') id: string,
  ): Promise<{ dataPlane: unknown; credential: string }> {
    const { record, token } = await this.dataPlanes.rotate(project.id, id, AuditService.actorOf(caller.principal));
    return { dataPlane: presentDataPlane(record), credential: token };
  }

  @Get()
  @Api({ response: DataPlaneList, permission: 'project.read', tag: 'data-planes', summary: 'List the data planes of this project' })
  async list(@CurrentProject() project: Project): Promise<{ dataPlanes: unknown[] }> {
    return { dataPlanes: (await this.dataPlanes.list(project.id)).map(presentDataPlane) };
  }

  @Get(':id')
  @Api({ response: DataPlaneAnswer, permission: 'project.read', tag: 'data-planes', summary: 'Show a data plane' })
  async show(@CurrentProject() project: Project, @Param('id') id: string): Promise<{ dataPlane: unknown }> {
    return { dataPlane: presentDataPlane(await this.dataPlanes.get(project.id, id)) };
  }

  @Get(':id/workers')
  @Api({
    response: DataPlaneWorkers,
    permission: 'project.read',
    tag: 'data-planes',
    summary: "The data plane's workers (SDK version, slots, connected, last seen) and the workflow versions they announced",
  })
  async workers(@CurrentProject() project: Project, @Param('id') id: string): Promise<z.input<typeof DataPlaneWorkers>> {
    const { workers, versions } = await this.dataPlanes.workers(project.id, id);
    return {
      workers: workers.map((w) => ({
        workerId: w.workerId,
        connected: w.connected,
        sdkVersion: w.sdkVersion,
        protocolVersion: w.protocolVersion,
        slots: w.slots,
        workflows: w.workflows,
        connectedAt: w.connectedAt.toISOString(),
        lastSeenAt: w.lastSeenAt.toISOString(),
        disconnectedAt: w.disconnectedAt === null ? null : w.disconnectedAt.toISOString(),
      })),
      workflowVersions: versions.map((v) => ({
        name: v.name,
        version: v.version,
        taskQueue: v.taskQueue,
        firstSeenAt: v.firstSeenAt.toISOString(),
        lastSeenAt: v.lastSeenAt.toISOString(),
      })),
    };
  }

  @Delete(':id')
  @Api({
    response: DataPlaneAnswer,
    permission: 'data-planes.manage',
    tag: 'data-planes',
    summary: "Revoke a data plane's credential; its workers' streams close within seconds",
  })
  async revoke(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Param('id') id: string,
  ): Promise<{ dataPlane: unknown }> {
    return { dataPlane: presentDataPlane(await this.dataPlanes.revoke(project.id, id, AuditService.actorOf(caller.principal))) };
  }
}
