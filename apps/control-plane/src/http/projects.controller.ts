import { Body, Controller, Get, Inject, Post } from '@nestjs/common';
import { z } from 'zod';
import { buildResidencyReport, type ResidencyReport as Report } from '@cairn/proto';
import type { Project } from '../tenancy/tenant.repository.js';
import { AccessService } from '../tenancy/access.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { nameSchema } from './schemas.js';
import { ProjectAnswer, ProjectList, ResidencyReport, Whoami } from './responses.js';
import type { Project as ProjectSchema } from './responses.js';

const CreateProjectBody = z.strictObject({ name: nameSchema });

export function presentProject(project: Project): z.input<typeof ProjectSchema> {
  return { id: project.id, organizationId: project.organizationId, name: project.name, createdAt: project.createdAt.toISOString() };
}

/** Built once: the descriptors do not change while the process runs. */
let residencyReport: Report | undefined;

/** The caller's identity and the organisation's projects (environments such as prod and staging). */
@Controller('v1')
export class ProjectsController {
  constructor(@Inject(AccessService) private readonly access: AccessService) {}

  @Get('whoami')
  @Api({
    response: Whoami,
    permission: 'project.read',
    tag: 'access',
    summary: 'The API key in use: its organisation, project scope and role',
  })
  whoami(@Caller() caller: RequestContext): Record<string, unknown> {
    const p = caller.principal;
    return { keyId: p.keyId, organizationId: p.organizationId, projectId: p.keyProjectId, role: p.role };
  }

  @Get('residency')
  @Api({
    response: ResidencyReport,
    permission: 'project.read',
    tag: 'access',
    summary: 'The boundary contract for a compliance reviewer: every field that crosses from the data plane, its class and bounds',
    description:
      'Built from the protobuf descriptors this control plane enforces (the same report as `cairn residency report`): each message the ' +
      "data plane sends, each field's residency class, length bound, pattern and what it carries, and what never crosses.",
  })
  residency(): Report {
    residencyReport ??= buildResidencyReport();
    return residencyReport;
  }

  @Get('projects')
  @Api({ response: ProjectList, permission: 'project.read', tag: 'projects', summary: 'List the projects this key can see' })
  async list(@Caller() caller: RequestContext): Promise<{ projects: unknown[] }> {
    return { projects: (await this.access.listProjects(caller.principal)).map(presentProject) };
  }

  @Get('projects/:project')
  @Api({ response: ProjectAnswer, permission: 'project.read', tag: 'projects', summary: 'Show a project (by ID or name)' })
  show(@CurrentProject() project: Project): { project: unknown } {
    return { project: presentProject(project) };
  }

  @Post('projects')
  @Api({
    response: ProjectAnswer,
    permission: 'organization.admin',
    tag: 'projects',
    summary: 'Create a project (needs an organisation-wide admin key)',
    body: CreateProjectBody,
    status: 201,
  })
  async create(@Caller() caller: RequestContext, @Body() body: z.infer<typeof CreateProjectBody>): Promise<{ project: unknown }> {
    return { project: presentProject(await this.access.createProject(caller.principal, body.name)) };
  }
}
