export * from './request-options.js';
export * from './stand-in-for-file.js';
export * from './stand-in-provider.js';
