export { orderRefund, APPROVAL_THRESHOLD, type RefundRequest, type RefundResult } from './order-refund.js';
