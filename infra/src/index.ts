export * from './edge-config.js';
export * from './metrics.js';
export { buildDashboard, dashboardText } from './dashboard.js';
