output "dns_name" {
  description = "DNS name of the load balancer (point the API's CNAME or alias record here)."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  description = "Hosted zone of the load balancer, for Route 53 alias records."
  value       = aws_lb.this.zone_id
}

output "arn_suffix" {
  description = "ARN suffix of the load balancer, the LoadBalancer dimension of its CloudWatch metrics."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn" {
  description = "Target group of the ingest tasks."
  value       = aws_lb_target_group.ingest.arn
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the ingest target group, for ALBRequestCountPerTarget scaling."
  value       = aws_lb_target_group.ingest.arn_suffix
}

output "access_log_bucket" {
  description = "S3 bucket of the ALB access logs."
  value       = aws_s3_bucket.logs.id
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL in front of the load balancer."
  value       = aws_wafv2_web_acl.this.arn
}
