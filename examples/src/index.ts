export { orderRefund, APPROVAL_THRESHOLD, type RefundRequest, type RefundResult } from './order-refund.js';
export { supportAgent, SUPPORT_APPROVAL_THRESHOLD, type SupportRequest } from './support-agent.js';
export { chatModel } from './models.js';
export { researchAgent, type ResearchRequest } from './research-agent.js';
