// @cairn/mock-llm: a local model server speaking the OpenAI-compatible and Mistral
// chat-completions APIs, with scripted deterministic replies and fault injection.
export { startMockLlm, type MockCall, type MockLlm, type MockLlmOptions } from './server.js';
export {
  parseScript,
  type MockDialect,
  type MockFault,
  type MockRule,
  type MockScript,
  type MockToolCall,
  type MockUsage,
} from './script.js';
