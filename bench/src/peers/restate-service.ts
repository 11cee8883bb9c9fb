// The Restate side of the peer benchmark: a service whose handler takes `steps` trivial steps, each
// a `ctx.run` (journaled by the Restate server before the handler goes on), served over HTTP/2 on a
// loopback port (PORT) for the server to call. Started as its own process by ./restate.ts, as a
// Cairn worker is.
import { createServer } from 'node:http2';
import * as restate from '@restatedev/restate-sdk';

const benchSteps = restate.service({
  name: 'BenchSteps',
  handlers: {
    run: async (ctx: restate.Context, input: { steps: number }): Promise<{ firstStepAt: number }> => {
      let firstStepAt = 0;
      for (let i = 0; i < input.steps; i++) {
        const at = await ctx.run(`s${i}`, () => Date.now());
        if (i === 0) firstStepAt = at;
      }
      return { firstStepAt };
    },
  },
});

const port = Number(process.env['PORT']);
if (!Number.isInteger(port) || port <= 0) throw new Error('PORT must be the port to listen on');
const server = createServer(restate.createEndpointHandler({ services: [benchSteps] }));
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
const close = () => server.close(() => process.exit(0));
process.on('SIGTERM', close);
process.on('SIGINT', close);
